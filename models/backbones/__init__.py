"""Backbones by name, each built around the norm factory.

    build_backbone("resnet18", num_classes=10, in_channels=3, norm="gn", norm_groups=32)

Every constructor has the same signature, `(num_classes, in_channels, norm_layer, image_size,
**backbone_options)`, where `norm_layer(num_channels) -> nn.Module` is `make_norm` with the norm name,
groups and options bound, so every layer of the study works in every backbone.

`backbone_options` holds the backbone's own keywords (`head: mlp` for vgg11, `zero_init_residual` for
the ResNets) and `norm_groups_policy`, which every backbone accepts:
- `strict` (default): a layer whose width `norm_groups` does not divide fails with the factory's error;
- `clamp`: such a layer uses gcd(width, norm_groups) groups instead, logged once per layer (for
  backbones whose widths vary, e.g. DenseNet's growing concatenations).
"""
from __future__ import annotations

import inspect
import logging
import math
from functools import partial
from typing import Callable

from torch import nn

from models.backbones.densenet import DenseNet121
from models.backbones.resnet import ResNet18, ResNet50
from models.backbones.small_cnn import SmallCNN
from models.backbones.vgg import VGG11
from models.norms import make_norm

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "vgg11": VGG11,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "densenet121": DenseNet121,
}
NORM_GROUPS_POLICIES = ("strict", "clamp")
# What build_backbone passes itself; every other constructor keyword is a backbone option.
BUILDER_ARGUMENTS = ("num_classes", "in_channels", "norm_layer", "image_size")
log = logging.getLogger(__name__)


def norm_layer_factory(norm: str, norm_groups: int, policy: str = "strict",
                       **norm_options) -> Callable[[int], nn.Module]:
    """`norm_layer(num_channels) -> nn.Module` for the backbones, under the given groups policy."""
    if policy not in NORM_GROUPS_POLICIES:
        allowed = ", ".join(NORM_GROUPS_POLICIES)
        raise ValueError(f"norm_groups_policy must be one of {allowed}, got {policy!r}")
    strict = partial(make_norm, norm, groups=norm_groups, **norm_options)

    def norm_layer(num_channels: int) -> nn.Module:
        try:
            return strict(num_channels)
        except ValueError as error:
            if norm_groups < 1 or num_channels % norm_groups == 0:  # not a clampable group count: it stands
                raise
            if policy == "strict":
                hint = "(or set model.backbone_options.norm_groups_policy: clamp)"
                raise ValueError(f"{error} {hint}") from None
        groups = math.gcd(num_channels, norm_groups)
        log.warning("norm %r: %d channels, norm_groups=%d does not divide them; using %d groups "
                    "(norm_groups_policy: clamp)", norm, num_channels, norm_groups, groups)
        return make_norm(norm, num_channels, groups=groups, **norm_options)

    return norm_layer


def build_backbone(name: str, num_classes: int, in_channels: int, norm: str, norm_groups: int = 32,
                   image_size: int = 32, backbone_options: dict | None = None, **norm_options) -> nn.Module:
    """Build backbone `name` with every normalization layer made by `make_norm(norm, C, norm_groups)`."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    options = dict(backbone_options or {})
    policy = options.pop("norm_groups_policy", "strict")
    norm_layer = norm_layer_factory(norm, norm_groups, policy, **norm_options)
    backbone = BACKBONES[name]
    own = set(inspect.signature(backbone).parameters) - set(BUILDER_ARGUMENTS)
    allowed = sorted(own) + ["norm_groups_policy"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"backbone {name!r} got unknown option(s) {unknown}; allowed: {allowed}")
    return backbone(num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer,
                    image_size=image_size, **options)
