"""The standard layers: none, BatchNorm (Ioffe & Szegedy 2015), GroupNorm (Wu & He 2018) and its
one-group (LayerNorm-like) and one-channel-per-group (InstanceNorm) cases.

x̂ = (x − μ)/√(σ² + ε) with the biased σ², then y = γ_c·x̂ + β_c:
- `bn`: μ, σ² per channel over (N, H, W); running estimates (momentum 0.1) are used in eval.
- `gn`: μ, σ² per sample over groups of C/G channels × (H, W); the same in train and eval.
  `reference_arithmetic=True` gives the GN paper's published code's variant (reference_arithmetic.py).
- `ln`: `gn` with one group (statistics over C, H, W); `in`: `gn` with C groups, with γ, β.
"""
from __future__ import annotations

from functools import partial

from torch import nn

from models.norms.checks import check_batch_values, check_groups
from models.norms.extents import Extent, Shape, per_channel, per_sample
from models.norms.reference_arithmetic import ReferenceGroupNorm


def batch_norm_2d(num_channels: int, layer: str = "bn", **options) -> nn.BatchNorm2d:
    """A plain `nn.BatchNorm2d` (so sync-BN converters, which match that exact type, reach it) whose
    batch-of-one error names the layer type of the study that failed (a forward pre-hook)."""
    module = nn.BatchNorm2d(num_channels, **options)
    module.register_forward_pre_hook(partial(_check_batch, layer))
    return module


def _check_batch(layer: str, module: nn.Module, inputs: tuple) -> None:
    x = inputs[0]
    if module.training:
        check_batch_values(layer, x, x.numel() // max(x.shape[1], 1), "(N, H, W) per channel")


class NoNorm(nn.Identity):
    """`none`: the identity in a norm layer's place. Its own type, so that callbacks find the place (the
    activation statistics of a network without normalization sit at the same module paths)."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_channels = num_channels

    def extra_repr(self) -> str:
        return str(self.num_channels)


def none(num_channels: int, groups: int) -> nn.Module:
    return NoNorm(num_channels)


def batch_norm(num_channels: int, groups: int, eps: float = 1e-5, momentum: float | None = 0.1) -> nn.Module:
    return batch_norm_2d(num_channels, eps=eps, momentum=momentum)


def group_norm(num_channels: int, groups: int, eps: float = 1e-5, reference_arithmetic: bool = False) -> nn.Module:
    if reference_arithmetic:
        return ReferenceGroupNorm(num_channels, groups, eps=eps)
    check_groups("gn", num_channels, groups)
    return nn.GroupNorm(groups, num_channels, eps=eps)


def layer_norm(num_channels: int, groups: int, eps: float = 1e-5) -> nn.Module:
    return nn.GroupNorm(1, num_channels, eps=eps)


def instance_norm(num_channels: int, groups: int, eps: float = 1e-5) -> nn.Module:
    return nn.GroupNorm(num_channels, num_channels, eps=eps)


def batch_norm_statistics(layer: nn.Module, shape: Shape) -> list[Extent]:
    """`bn`: one statistic per channel over N×H×W."""
    return [per_channel(shape)]


def group_norm_statistics(layer: nn.Module, shape: Shape) -> list[Extent]:
    """`gn`, `ln`, `in`: one statistic per sample and group, over its C/G channels × H×W."""
    groups = layer.groups if isinstance(layer, ReferenceGroupNorm) else layer.num_groups
    return [per_sample(shape, groups)]
