"""The norm registry: every layer name of the study, in the order reports list them, and what it is.

An explicit ordered map from name to `NormSpec`, as timm's `create_norm_layer` keeps its map of
names: the order written here is the order of `norm_names()` (and of report columns), whatever order
modules are imported in. Each builder has the uniform signature `(num_channels, groups, **options)`,
so names are interchangeable in configs; `models.norms.factory.make_norm` calls them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from models.norms import basic, candidates
from models.norms.gn_plus import GNPlus, GNPlusBNFirst, GNPlusGNFirst, GNPlusParallel
from models.norms.reference_arithmetic import ReferenceGroupNorm


@dataclass(frozen=True)
class NormSpec:
    builder: Callable[..., nn.Module]
    # Whether training statistics are taken across the examples of a batch (then a batch of one per
    # device is refused: eval's running estimates would average per-example statistics); a callable
    # decides from the layer's options.
    batch_statistics: bool | Callable[[dict], bool]
    # The module classes the builder returns beyond torch's norms (their γ, β join the `norm` group).
    module_types: tuple[type, ...] = ()


NORMS: dict[str, NormSpec] = {
    "none": NormSpec(basic.none, batch_statistics=False, module_types=(basic.NoNorm,)),
    "bn": NormSpec(basic.batch_norm, batch_statistics=True),
    "gn": NormSpec(basic.group_norm, batch_statistics=False, module_types=(ReferenceGroupNorm,)),
    "ln": NormSpec(basic.layer_norm, batch_statistics=False),
    "in": NormSpec(basic.instance_norm, batch_statistics=False),
    "gn_plus_parallel": NormSpec(GNPlusParallel, batch_statistics=True, module_types=(GNPlus,)),
    "gn_plus_gn_first": NormSpec(GNPlusGNFirst, batch_statistics=True, module_types=(GNPlus,)),
    "gn_plus_bn_first": NormSpec(GNPlusBNFirst, batch_statistics=True, module_types=(GNPlus,)),
    "gn_then_bn": NormSpec(candidates.gn_then_bn, batch_statistics=True, module_types=(candidates.GNThenBN,)),
    "bgn": NormSpec(candidates.batch_group_norm, batch_statistics=True,
                    module_types=(candidates.BatchGroupNorm,)),
    # One example per group is GN (statistics per sample, in eval too); any other grouping spans examples.
    "gbgn": NormSpec(candidates.general_batch_group_norm,
                     batch_statistics=lambda options: options.get("examples_per_group") != 1,
                     module_types=(candidates.BatchGroupNorm,)),
}
_NORM_MODULE_TYPES = tuple(dict.fromkeys(
    (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, *(t for s in NORMS.values() for t in s.module_types))))


def norm_names() -> list[str]:
    """The registered norm names, in the registry's order."""
    return list(NORMS)


def norm_spec(name: str) -> NormSpec:
    """The registry entry of `name`; an unknown name is one line listing the allowed ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; allowed: {', '.join(NORMS)}")
    return NORMS[name]


def uses_batch_statistics(name: str, options: dict | None = None) -> bool:
    """True when norm `name` (with `options`) normalizes with statistics across a batch's examples in training."""
    flag = norm_spec(name).batch_statistics
    return flag(options or {}) if callable(flag) else flag


def is_norm_module(module: nn.Module) -> bool:
    """True for every normalization layer the registry's builders make (and torch's own)."""
    return isinstance(module, _NORM_MODULE_TYPES)
