"""DenseNet-121 (Huang et al. 2017, "Densely Connected Convolutional Networks") in CIFAR form.

The GN paper (Gunawan, Yin & Zhang 2022, Figs 2-4) compares GN, BN and no norm on DenseNet-121. This is the
kuangliu/pytorch-cifar form (6,956,298 parameters with bn and 10 classes): a 3×3 stem conv to
2·growth channels without max-pool; four dense blocks of [6, 12, 24, 16] bottleneck layers, each
norm → ReLU → 1×1 conv (4·growth) → norm → ReLU → 3×3 conv (growth) whose output is concatenated to
its input; between blocks a transition norm → ReLU → 1×1 conv (compression 0.5) → 2×2 average pool;
then norm → ReLU → global average pool → linear. Growth 32.

The concatenations grow the width by 32 per layer (64, 96, 128, ...), so a `norm_groups` that does
not divide every width needs `norm_groups_policy: clamp` (see `models.backbones.build_backbone`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.backbones.init import init_conv_weights

NormLayer = Callable[[int], nn.Module]
GROWTH, BLOCK_SIZES, COMPRESSION = 32, (6, 12, 24, 16), 0.5


class DenseLayer(nn.Module):
    def __init__(self, in_planes: int, growth: int, norm_layer: NormLayer):
        super().__init__()
        self.norm1 = norm_layer(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.norm2 = norm_layer(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, norm_layer: NormLayer):
        super().__init__()
        self.norm = norm_layer(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2)


class DenseNet121(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, norm_layer: NormLayer, image_size: int = 32):
        """`image_size` is accepted for the uniform signature; the global pool makes any size work."""
        super().__init__()
        growth = GROWTH
        planes = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)]
        for index, size in enumerate(BLOCK_SIZES):
            for _ in range(size):
                layers.append(DenseLayer(planes, growth, norm_layer))
                planes += growth
            if index < len(BLOCK_SIZES) - 1:
                out_planes = int(planes * COMPRESSION)
                layers.append(Transition(planes, out_planes, norm_layer))
                planes = out_planes
        layers += [norm_layer(planes), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(planes, num_classes))
        init_conv_weights(self)

    def forward(self, x):
        return self.head(self.features(x))
