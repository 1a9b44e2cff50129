"""VGG-11 (configuration A of Simonyan & Zisserman 2015) in CIFAR form, as in the GN-paper analysis.

"Understanding and Improving Group Normalization" (Gunawan, Yin & Zhang 2022) runs its analysis
(§3, appendix B.2) on this network (its published code calls it "VGG16"; its README says VGG-11):
[conv 3×3 (bias) → norm → ReLU] per entry of 64-M-128-M-256-256-M-512-512-M-512-512-M, then a head:
- `head: linear` (default): 512 → classes, the well-known CIFAR VGG-11 (9,231,114 parameters with bn);
- `head: mlp`: 512 → 512 → 512 → classes with ReLU between, the analysis head of the paper's code.
`width` multiplies every convolution's channel count (0.125: 8-M-16-M-32-32-M-64-64-M-64-64-M), a
CPU-sized network with the same depth and the same map sizes, for studies that need the late small
stages (at 28×28 input the last two norm layers see 2×2 maps: a batch statistic averages 4·N values)
more than they need capacity.
The convolutions keep their bias before the norm, as the paper's code does: it makes the network
trainable with `norm: none`, which the paper's GN-vs-no-norm comparison needs. Max-pools use ceil
mode so 28×28 inputs reach 1×1 too (28 → 14 → 7 → 4 → 2 → 1; at 32×32 ceil and floor agree), and a
global average pool before the head lets larger inputs through.
"""
from __future__ import annotations

from typing import Callable, Literal

from torch import nn

from models.backbones.init import init_conv_weights
from value_ranges import Range, check_values, is_finite_number, one_of

CONFIG_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
OPTIONS = {
    "head": one_of("linear", "mlp"),
    "width": Range(lambda v: is_finite_number(v) and round(CONFIG_A[0] * v) >= 1,
                   "a finite number with round(64 × width) >= 1 (every layer keeps a channel)"),
}


class VGG11(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, norm_layer: Callable[[int], nn.Module],
                 image_size: int = 32, head: Literal["linear", "mlp"] = "linear", width: float = 1.0):
        """`image_size` is accepted for the uniform backbone signature; the pooling makes any size work."""
        super().__init__()
        check_values("vgg11 ", OPTIONS, {"head": head, "width": width})
        layers: list[nn.Module] = []
        channels = in_channels
        for entry in CONFIG_A:
            if entry == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                out = round(entry * width)
                layers += [nn.Conv2d(channels, out, 3, padding=1), norm_layer(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        if head == "linear":
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                            nn.Linear(channels, num_classes))
        else:
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 512), nn.ReLU(inplace=True),
                nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes),
            )
        init_conv_weights(self)

    def forward(self, x):
        return self.classifier(self.features(x))
