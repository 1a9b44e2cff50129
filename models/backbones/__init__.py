"""Backbones by name, each built around the norm factory.

    build_backbone("resnet18", num_classes=10, in_channels=3, norm="gn", norm_groups=32)

Every constructor has the same signature, `(num_classes, in_channels, norm_layer, image_size)`, where
`norm_layer(num_channels) -> nn.Module` is `make_norm` with the norm name, groups and options bound.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from models.backbones.small_cnn import SmallCNN
from models.norms import make_norm

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
}


def build_backbone(name: str, num_classes: int, in_channels: int, norm: str, norm_groups: int = 32,
                   image_size: int = 32, backbone_options: dict | None = None, **norm_options) -> nn.Module:
    """Build backbone `name` with every normalization layer made by `make_norm(norm, C, norm_groups)`."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    norm_layer = partial(make_norm, norm, groups=norm_groups, **norm_options)
    return BACKBONES[name](num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer,
                           image_size=image_size, **(backbone_options or {}))
