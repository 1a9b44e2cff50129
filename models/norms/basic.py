"""The standard layers: none, BatchNorm (Ioffe & Szegedy 2015), GroupNorm (Wu & He 2018).

x̂ = (x − μ)/√(σ² + ε) with the biased σ², then y = γ_c·x̂ + β_c:
- `bn`: μ, σ² per channel over (N, H, W); running estimates (momentum 0.1) are used in eval.
- `gn`: μ, σ² per sample over groups of C/G channels × (H, W); the same in train and eval.
"""
from __future__ import annotations

from torch import nn

from models.norms.factory import check_groups, register_norm


@register_norm("none")
def none(num_channels: int, groups: int) -> nn.Module:
    return nn.Identity()


@register_norm("bn")
def batch_norm(num_channels: int, groups: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm2d(num_channels, eps=eps, momentum=momentum)


@register_norm("gn")
def group_norm(num_channels: int, groups: int, eps: float = 1e-5) -> nn.Module:
    check_groups("gn", num_channels, groups)
    return nn.GroupNorm(groups, num_channels, eps=eps)
