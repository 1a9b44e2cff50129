"""Gaussian noise on a normalization layer's output, in training only (the GN paper, §3.2.1).

Gunawan, Yin & Zhang 2022 ("Understanding and Improving Group Normalization", §3.2.1, Fig. 5)
distort each norm layer's output with N(μ = 1e-3, σ = 1.001) noise and find GN collapses where BN and
GNPlusGNFirst survive. Their published code (`GaussianNoise` in src/models/vgg.py of
github.com/agusgun/UnderstandingGroupNorm) adds the noise after γ, β and before the ReLU, drawing one
value per (sample, group of C/G channels) shared by the group's elements (`granularity="group"`);
`granularity="element"` draws one value per output element.

`make_norm` wraps any layer in `OutputNoise` when noise options are given, so every layer type gets
the same noise. The wrapped layer stays a child module (callbacks find it by type; sync-BN conversion
reaches it) and `weight` / `bias` read through to its γ, β.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from models.norms.checks import check_groups, check_options
from value_ranges import finite_number, one_of

Granularity = Literal["element", "group"]


class OutputNoise(nn.Module):
    # The options `make_norm` accepts for every layer, and their ranges.
    OPTIONS = {"noise_mean": finite_number(), "noise_std": finite_number(at_least=0),
               "noise_granularity": one_of("element", "group")}

    def __init__(self, layer: nn.Module, name: str, num_channels: int, groups: int, mean: float, std: float,
                 granularity: Granularity = "element"):
        super().__init__()
        check_options(name, self.OPTIONS, {"noise_mean": mean, "noise_std": std, "noise_granularity": granularity})
        if granularity == "group":
            check_groups(name, num_channels, groups)
        self.layer, self.groups, self.mean, self.std, self.granularity = layer, groups, mean, std, granularity

    @property
    def weight(self) -> torch.Tensor | None:
        """The wrapped layer's γ (backbones zero-initialise it in residual branches)."""
        return getattr(self.layer, "weight", None)

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.layer, "bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        if not self.training:
            return y
        if self.granularity == "element":
            return y + torch.randn_like(y).mul_(self.std).add_(self.mean)
        draws = torch.randn(y.shape[0], self.groups, 1, dtype=y.dtype, device=y.device).mul_(self.std).add_(self.mean)
        return (y.reshape(y.shape[0], self.groups, -1) + draws).view_as(y)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}, granularity={self.granularity}, groups={self.groups}"
