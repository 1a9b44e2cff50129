"""ResNet-18 and ResNet-50 (He et al. 2016) in CIFAR form, as the GN paper's training script builds them.

"Understanding and Improving Group Normalization" (Gunawan, Yin & Zhang 2022) trains the
kuangliu/pytorch-cifar ResNet (Tables 2-4: ResNet-50; SVHN: ResNet-18): a 3×3 stride-1 stem conv →
norm → ReLU without max-pool, four stages of 64/128/256/512 planes with strides 1/2/2/2, a norm after
every conv and in every projection shortcut (1×1 conv + norm, used when the stride or the width
changes), global average pool, linear head. ResNet-18 = BasicBlock [2,2,2,2] (11,173,962 parameters
with bn and 10 classes), ResNet-50 = Bottleneck [3,4,6,3] (23,520,842).

`zero_init_residual` (Goyal et al. 2017, "Accurate, Large Minibatch SGD") starts every block as the
identity: the affine weight γ of the block's last norm is zeroed, whatever the norm type; with
`norm: none` there is no γ, so the block's last conv is zeroed instead.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.backbones.init import init_conv_weights

NormLayer = Callable[[int], nn.Module]


def shortcut(in_planes: int, out_planes: int, stride: int, norm_layer: NormLayer) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    projection = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
    return nn.Sequential(projection, norm_layer(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, norm_layer: NormLayer):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.norm2 = norm_layer(planes)
        self.shortcut = shortcut(in_planes, planes, stride, norm_layer)

    def last_conv_and_norm(self) -> tuple[nn.Conv2d, nn.Module]:
        return self.conv2, self.norm2

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, norm_layer: NormLayer):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.norm1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.norm3 = norm_layer(out_planes)
        self.shortcut = shortcut(in_planes, out_planes, stride, norm_layer)

    def last_conv_and_norm(self) -> tuple[nn.Conv2d, nn.Module]:
        return self.conv3, self.norm3

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def affine_weight(norm: nn.Module) -> nn.Parameter | None:
    """The γ scaling a norm layer's output: its own `weight`, else its last sub-layer's (stacked norms)."""
    for module in [norm, *reversed(list(norm.modules())[1:])]:
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            return weight
    return None


def zero_init_last(block: BasicBlock | Bottleneck) -> None:
    conv, norm = block.last_conv_and_norm()
    weight = affine_weight(norm)
    nn.init.zeros_(conv.weight if weight is None else weight)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock | Bottleneck], num_blocks: tuple[int, int, int, int],
                 num_classes: int, in_channels: int, norm_layer: NormLayer, zero_init_residual: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), norm_layer(64),
                                  nn.ReLU(inplace=True))
        stages, in_planes = [], 64
        for planes, blocks, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            layers = []
            for i in range(blocks):
                layers.append(block(in_planes, planes, stride if i == 0 else 1, norm_layer))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, num_classes))
        init_conv_weights(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    zero_init_last(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class ResNet18(ResNet):
    def __init__(self, num_classes: int, in_channels: int, norm_layer: NormLayer, image_size: int = 32,
                 zero_init_residual: bool = False):
        """`image_size` is accepted for the uniform signature; the global pool makes any size work."""
        super().__init__(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, norm_layer, zero_init_residual)


class ResNet50(ResNet):
    def __init__(self, num_classes: int, in_channels: int, norm_layer: NormLayer, image_size: int = 32,
                 zero_init_residual: bool = False):
        """`image_size` is accepted for the uniform signature; the global pool makes any size work."""
        super().__init__(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, norm_layer, zero_init_residual)
