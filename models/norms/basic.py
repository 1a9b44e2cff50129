"""The standard layers: none, BatchNorm (Ioffe & Szegedy 2015), GroupNorm (Wu & He 2018) and its
one-group (LayerNorm-like) and one-channel-per-group (InstanceNorm) cases.

x̂ = (x − μ)/√(σ² + ε) with the biased σ², then y = γ_c·x̂ + β_c:
- `bn`: μ, σ² per channel over (N, H, W); running estimates (momentum 0.1) are used in eval.
- `gn`: μ, σ² per sample over groups of C/G channels × (H, W); the same in train and eval.
  `reference_arithmetic=True` gives the GN seed repository's variant (see seed_arithmetic.py).
- `ln`: `gn` with one group (statistics over C, H, W); `in`: `gn` with C groups, with γ, β.
"""
from __future__ import annotations

import torch
from torch import nn

from models.norms.factory import check_batch_values, check_groups, register_norm
from models.norms.seed_arithmetic import SeedGroupNorm


class CheckedBatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` whose batch-of-one error names the layer type of the study that failed."""

    def __init__(self, num_features: int, layer: str = "bn", **options):
        super().__init__(num_features, **options)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            check_batch_values(self.layer, x, x.numel() // max(x.shape[1], 1), "(N, H, W) per channel")
        return super().forward(x)


@register_norm("none")
def none(num_channels: int, groups: int) -> nn.Module:
    return nn.Identity()


@register_norm("bn")
def batch_norm(num_channels: int, groups: int, eps: float = 1e-5, momentum: float | None = 0.1) -> nn.Module:
    return CheckedBatchNorm2d(num_channels, eps=eps, momentum=momentum)


@register_norm("gn")
def group_norm(num_channels: int, groups: int, eps: float = 1e-5, reference_arithmetic: bool = False) -> nn.Module:
    if reference_arithmetic:
        return SeedGroupNorm(num_channels, groups, eps=eps)
    check_groups("gn", num_channels, groups)
    return nn.GroupNorm(groups, num_channels, eps=eps)


@register_norm("ln")
def layer_norm(num_channels: int, groups: int, eps: float = 1e-5) -> nn.Module:
    return nn.GroupNorm(1, num_channels, eps=eps)


@register_norm("in")
def instance_norm(num_channels: int, groups: int, eps: float = 1e-5) -> nn.Module:
    return nn.GroupNorm(num_channels, num_channels, eps=eps)
