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
from models.backbones.shapes import norm_input_shapes
from models.norms import check_norm_options, make_norm
from models.norms.statistics import check_norm_inputs
from value_ranges import one_of

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "vgg11": VGG11,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "densenet121": DenseNet121,
}
NORM_GROUPS_POLICY = one_of("strict", "clamp")
# What build_backbone passes itself; every other constructor keyword is a backbone option.
BUILDER_ARGUMENTS = ("num_classes", "in_channels", "norm_layer", "image_size")
log = logging.getLogger(__name__)


def norm_layer_factory(norm: str, norm_groups: int, policy: str = "strict",
                       **norm_options) -> Callable[[int], nn.Module]:
    """`norm_layer(num_channels) -> nn.Module` for the backbones, under the given groups policy."""
    NORM_GROUPS_POLICY.check("norm_groups_policy", policy)
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
    """Build backbone `name` with every normalization layer made by `make_norm(norm, C, norm_groups)`.

    The options are checked before anything is built, and the norm layers against the backbone's
    shapes at `image_size` (`models.norms.statistics`) after: a layer that cannot normalize its
    input in training is an error here, naming the layer, not a constant output later."""
    check_norm_options(norm, norm_options)
    options = _backbone_options(name, backbone_options)
    policy = options.pop("norm_groups_policy", "strict")
    norm_layer = norm_layer_factory(norm, norm_groups, policy, **norm_options)
    net = BACKBONES[name](num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer,
                         image_size=image_size, **options)
    check_norm_inputs(net, norm, backbone_norm_shapes(name, in_channels, image_size, None, backbone_options))
    return net


def backbone_norm_shapes(name: str, in_channels: int, image_size: int, batch_size: int | None,
                         backbone_options: dict | None = None) -> dict[str, tuple]:
    """{path of each norm layer of backbone `name`: its input shape (batch_size, C, H, W)}."""
    options = _backbone_options(name, backbone_options)
    options.pop("norm_groups_policy", None)
    return norm_input_shapes(BACKBONES[name], in_channels, image_size, batch_size, **options)


def _backbone_options(name: str, backbone_options: dict | None) -> dict:
    """A copy of `backbone_options`, after refusing an unknown backbone or option."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    options = dict(backbone_options or {})
    own = set(inspect.signature(BACKBONES[name]).parameters) - set(BUILDER_ARGUMENTS)
    allowed = sorted(own) + ["norm_groups_policy"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"backbone {name!r} got unknown option(s) {unknown}; allowed: {allowed}")
    return options
