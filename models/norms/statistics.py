"""What each norm layer's training statistics are taken over, and the checks against an input shape.

A statistic computed from a single value is x − μ = 0: the layer then outputs its β whatever its input
(an instance norm on a 1×1 map; BN at one value per channel), silently. `bgn` (Zhou et al. 2020,
§3: the C·H·W axis split into G groups) and `gbgn` (Summers & Dinneen 2020, §4: examples grouped by
`examples_per_group`) also need the input's shape and the batch to divide into their groups. These
are known from the backbone's shapes before training (`models.backbones.shapes`): `check_norm_inputs`
refuses such a network at build time, or at start-up once the batch is known, naming the layer.
"""
from __future__ import annotations

import math

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from models.norms.candidates import BatchGroupNorm, GNThenBN
from models.norms.gn_plus import GNPlus
from models.norms.noise import OutputNoise
from models.norms.reference_arithmetic import ReferenceGroupNorm

Shape = tuple  # (N or None, C, H, W): N is None while the batch is not known


def training_statistics(layer: nn.Module, shape: Shape) -> list[tuple[str, int | None]]:
    """[(what one training statistic of `layer` is taken over, how many values it covers)] for an input of
    `shape`; a count that needs the unknown batch is None."""
    n, c, spatial = shape[0], shape[1], math.prod(shape[2:])

    def per_sample(groups: int, part: str = "") -> tuple[str, int]:
        return f"{part}per sample over {c // groups} channel(s) × H×W", c // groups * spatial

    def per_channel(part: str = "") -> tuple[str, int | None]:
        return f"{part}per channel over N×H×W", None if n is None else n * spatial

    layer = _unwrap(layer)
    if isinstance(layer, GNThenBN):
        return [per_sample(layer.gn.num_groups, "GN part: "), per_channel("BN part: ")]
    if isinstance(layer, GNPlus):
        bn_part = ("BN part: per (C, H, W) position over the batch", n) if layer.reference_arithmetic \
            else per_channel("BN part: ")
        return [per_sample(layer.groups, "GN part: "), bn_part]
    if isinstance(layer, BatchGroupNorm):
        examples = layer.examples_per_group or n
        over = f"{layer.examples_per_group or 'N'} example(s) × a group of C·H·W/{layer.groups}"
        return [(over, None if examples is None else examples * c * spatial // layer.groups)]
    if isinstance(layer, (nn.GroupNorm, ReferenceGroupNorm)):
        return [per_sample(layer.num_groups if isinstance(layer, nn.GroupNorm) else layer.groups)]
    if isinstance(layer, _BatchNorm):
        return [per_channel()]
    return []


def _unwrap(layer: nn.Module) -> nn.Module:
    return layer.layer if isinstance(layer, OutputNoise) else layer


def _divisors(value: int, limit: int = 128) -> list[int]:
    return [d for d in range(1, min(value, limit) + 1) if value % d == 0]


def check_norm_inputs(net: nn.Module, norm: str, shapes: dict[str, Shape], batch: str = "") -> None:
    """Refuse a network whose norm layers (`shapes`: module path -> input shape) cannot normalize their
    input in training; `batch` names where N comes from (e.g. "data.batch_size=8"), when it is known."""
    layers = {path: net.get_submodule(path) for path in shapes}
    _check_merged_groups(norm, layers, shapes)
    for path, layer in layers.items():
        shape = shapes[path]
        inner = _unwrap(layer)
        if isinstance(inner, BatchGroupNorm) and shape[0] is not None and shape[0] % (inner.examples_per_group or 1):
            raise ValueError(f"norm {norm!r}: {batch} gives {shape[0]} images per device, which do not split into "
                             f"groups of examples_per_group={inner.examples_per_group}; use a multiple of "
                             f"{inner.examples_per_group} per device")
        for over, count in training_statistics(layer, shape):
            if count == 1:
                size = "×".join(str(d) for d in shape if d is not None)
                raise ValueError(
                    f"norm {norm!r} at {path}: its training statistic {over} covers 1 value of its {size} input"
                    f"{f' ({batch})' if shape[0] is not None else ''}, so the layer would output its β whatever "
                    "the input; use larger images, fewer groups, a larger batch or another norm")


def _check_merged_groups(norm: str, layers: dict[str, nn.Module], shapes: dict[str, Shape]) -> None:
    """bgn's G groups split each sample's C·H·W values: every layer's C·H·W must divide by G."""
    sizes = {path: math.prod(shapes[path][1:]) for path, layer in layers.items()
             if isinstance(_unwrap(layer), BatchGroupNorm)}
    for path, size in sizes.items():
        groups = _unwrap(layers[path]).groups
        if size % groups:
            common = math.gcd(*sizes.values())
            c, *spatial = shapes[path][1:]
            raise ValueError(
                f"norm {norm!r} at {path}: norm_groups={groups} does not divide its input's C·H·W = "
                f"{c}·{'·'.join(map(str, spatial))} = {size}; allowed group counts for this network: "
                f"{_divisors(common)}")
