"""The GN paper's published code's normalization arithmetic, offered only to reproduce its numbers.

The public repository of Gunawan, Yin & Zhang 2022 ("Understanding and Improving Group
Normalization", github.com/agusgun/UnderstandingGroupNorm) computes its layers differently from the
paper's text (§4, Fig. 1: μ, σ over (N, H, W) for BN and over C/G channels × (H, W) for GN) and from
torch:
- its GN (`GroupNorm2d`) divides by the *unbiased* std plus ε (ε added to the std, not the variance);
- the "BN" part of its GNPlus layers normalizes over the batch axis only (one mean/std per (C, H, W)
  position), with the unbiased std plus ε, and keeps no running statistics, so eval also uses the
  current batch's statistics.
`reference_arithmetic=True` on `gn` and the GNPlus layers selects these formulas; never the default.
"""
from __future__ import annotations

import torch
from torch import nn

from models.norms.checks import check_batch_values, check_groups


def reference_group_norm(x: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    """(x − μ)/(std + ε) per sample and group of channels, std unbiased (`GroupNorm2d`)."""
    rows = x.reshape(x.shape[0], groups, -1)
    mean, std = rows.mean(-1, keepdim=True), rows.std(-1, keepdim=True)
    return ((rows - mean) / (std + eps)).view_as(x)


def reference_batch_norm(x: torch.Tensor, eps: float, layer: str = "gn_plus") -> torch.Tensor:
    """(x − μ)/(std + ε) over the batch axis only, per (C, H, W) position, std unbiased."""
    check_batch_values(layer, x, x.shape[0], "the batch axis (reference arithmetic)")
    return (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + eps)


class ReferenceGroupNorm(nn.Module):
    """`gn` with reference_arithmetic=True: the code's `GroupNorm2d`, y = γ·reference_group_norm(x) + β."""

    def __init__(self, num_channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        check_groups("gn", num_channels, groups)
        self.num_channels, self.groups, self.eps = num_channels, groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trailing = (1,) * (x.dim() - 2)
        return torch.addcmul(self.bias.view(-1, *trailing), reference_group_norm(x, self.groups, self.eps),
                             self.weight.view(-1, *trailing))

    def extra_repr(self) -> str:
        return f"{self.num_channels}, groups={self.groups}, eps={self.eps}, reference_arithmetic=True"
