"""The norm registry: every layer name of the study, in the order reports list them, and all that the
rest of normlab knows about each.

An explicit ordered map from name to `NormSpec`, as timm's `create_norm_layer` keeps its map of
names: the order written here is the order of `norm_names()` (and of report columns), whatever order
modules are imported in. Each builder has the uniform signature `(num_channels, groups, **options)`,
so names are interchangeable in configs; `models.norms.factory.make_norm` calls them.

A norm is its module and its entry here, nothing else: the run name (`grouped`), the checks before
training (`batch_statistics`, `statistics`, `check_inputs`), the option checks (`options`) and the
parameter groups (`module_types`) all read the entry. `missing_facts` names a fact an entry lacks;
`norm_spec` refuses such an entry and tests/models/test_norms_registry.py walks them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, Mapping

from torch import nn

from models.norms import basic, candidates
from models.norms.checks import EPS, MOMENTUM
from models.norms.extents import Extent, Shape, no_statistics
from models.norms.gn_plus import GNPlus, GNPlusBNFirst, GNPlusGNFirst, GNPlusParallel
from models.norms.reference_arithmetic import ReferenceGroupNorm
from value_ranges import BOOLEAN, Range


@dataclass(frozen=True, kw_only=True)
class NormSpec:
    # (num_channels, groups, **options) -> the layer.
    builder: Callable[..., nn.Module] | None = None
    # Whether `groups` (model.norm_groups) changes the layer: a run name then shows it as g<G>.
    grouped: bool | None = None
    # Whether training statistics are taken across the examples of a batch (then a batch of one per
    # device is refused: eval's running estimates would average per-example statistics); a callable
    # decides from the layer's options.
    batch_statistics: bool | Callable[[dict], bool] | None = None
    # (a built layer, its input shape (N or None, C, H, W)) -> the extent of each statistic it computes
    # in training (`extents.py`); the start-up check refuses a statistic of one value.
    statistics: Callable[[nn.Module, Shape], list[Extent]] | None = None
    # Every keyword option of the builder, with its range (the noise options of `make_norm` come on top).
    options: Mapping[str, Range] | None = None
    # The module classes the builder returns: their γ, β join the `norm` parameter group, and callbacks
    # find the norm layers' places by them (`none`'s identity has a class of its own for this).
    module_types: tuple[type, ...] | None = None
    # (norm, {path: layer}, {path: input shape}, where the batch comes from) -> None: checks of the
    # whole network's inputs beyond one statistic per layer; most norms need none.
    check_inputs: Callable[[str, dict, dict, str], None] | None = field(default=None, compare=False)


FACTS = tuple(f.name for f in fields(NormSpec) if f.name != "check_inputs")
# torch's own normalization layers, which any model may hold (a probe's test model, a user's backbone).
TORCH_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
                    nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)
_BN_OPTIONS = {"eps": EPS, "momentum": MOMENTUM}

NORMS: dict[str, NormSpec] = {
    "none": NormSpec(builder=basic.none, grouped=False, batch_statistics=False, statistics=no_statistics,
                     options={}, module_types=(basic.NoNorm,)),
    # SyncBatchNorm: what torch's converter makes of a BatchNorm2d under DDP with sync_batchnorm.
    "bn": NormSpec(builder=basic.batch_norm, grouped=False, batch_statistics=True,
                   statistics=basic.batch_norm_statistics, options=_BN_OPTIONS,
                   module_types=(nn.BatchNorm2d, nn.SyncBatchNorm)),
    "gn": NormSpec(builder=basic.group_norm, grouped=True, batch_statistics=False,
                   statistics=basic.group_norm_statistics,
                   options={"eps": EPS, "reference_arithmetic": BOOLEAN},
                   module_types=(nn.GroupNorm, ReferenceGroupNorm)),
    "ln": NormSpec(builder=basic.layer_norm, grouped=False, batch_statistics=False,
                   statistics=basic.group_norm_statistics, options={"eps": EPS}, module_types=(nn.GroupNorm,)),
    "in": NormSpec(builder=basic.instance_norm, grouped=False, batch_statistics=False,
                   statistics=basic.group_norm_statistics, options={"eps": EPS}, module_types=(nn.GroupNorm,)),
    **{name: NormSpec(builder=layer, grouped=True, batch_statistics=True, statistics=GNPlus.training_statistics,
                      options=GNPlus.OPTIONS, module_types=(GNPlus,))
       for name, layer in (("gn_plus_parallel", GNPlusParallel), ("gn_plus_gn_first", GNPlusGNFirst),
                           ("gn_plus_bn_first", GNPlusBNFirst))},
    "gn_then_bn": NormSpec(builder=candidates.gn_then_bn, grouped=True, batch_statistics=True,
                           statistics=candidates.GNThenBN.training_statistics, options=_BN_OPTIONS,
                           module_types=(candidates.GNThenBN, nn.GroupNorm, nn.BatchNorm2d, nn.SyncBatchNorm)),
    "bgn": NormSpec(builder=candidates.batch_group_norm, grouped=True, batch_statistics=True,
                    statistics=candidates.BatchGroupNorm.training_statistics, options=_BN_OPTIONS,
                    module_types=(candidates.BatchGroupNorm,), check_inputs=candidates.check_batch_group_inputs),
    # One example per group is GN (statistics per sample, in eval too); any other grouping spans examples.
    "gbgn": NormSpec(builder=candidates.general_batch_group_norm, grouped=True,
                     batch_statistics=lambda options: options.get("examples_per_group") != 1,
                     statistics=candidates.BatchGroupNorm.training_statistics,
                     options=candidates.BatchGroupNorm.OPTIONS, module_types=(candidates.BatchGroupNorm,),
                     check_inputs=candidates.check_batch_group_inputs),
}


def norm_names() -> list[str]:
    """The registered norm names, in the registry's order."""
    return list(NORMS)


def missing_facts(spec: NormSpec) -> list[str]:
    """The facts a registry entry leaves out (None)."""
    return [name for name in FACTS if getattr(spec, name) is None]


def norm_spec(name: str) -> NormSpec:
    """The registry entry of `name`; an unknown name is one line listing the allowed ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; allowed: {', '.join(NORMS)}")
    spec = NORMS[name]
    missing = missing_facts(spec)
    if missing:
        raise ValueError(f"norm {name!r} is registered without {', '.join(missing)} (models/norms/registry.py)")
    return spec


def is_grouped(name: str) -> bool:
    """True when norm `name` takes its group count from `model.norm_groups`."""
    return norm_spec(name).grouped


def uses_batch_statistics(name: str, options: dict | None = None) -> bool:
    """True when norm `name` (with `options`) normalizes with statistics across a batch's examples in training."""
    flag = norm_spec(name).batch_statistics
    return flag(options or {}) if callable(flag) else flag


def is_norm_module(module: nn.Module) -> bool:
    """True for every normalization layer the registry's builders make, and torch's own."""
    return isinstance(module, (*TORCH_NORM_TYPES, *(t for spec in NORMS.values() for t in spec.module_types or ())))
