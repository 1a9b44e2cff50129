"""A norm that exists only for tests/lightning_app/test_new_norm_end_to_end.py: the one module a new
norm needs, beside its one registry entry (`ENTRY`, which the test puts into the registry).

Group RMS normalization: y = γ·x/√(mean(x²) + ε) + β, the mean taken per sample over each group of C/G
channels × H×W, without centring (Zhang & Sennrich 2019's RMSNorm, applied per group as GN groups
channels: Wu & He 2018, §3).
"""
from __future__ import annotations

import torch
from torch import nn

from models.norms.checks import EPS, check_groups
from models.norms.extents import Extent, Shape, per_sample
from models.norms.registry import NormSpec


class GroupRMSNorm(nn.Module):
    def __init__(self, num_channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        check_groups("group_rms", num_channels, groups)
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], self.groups, -1)
        y = (rows * torch.rsqrt(rows.pow(2).mean(-1, keepdim=True) + self.eps)).view_as(x)
        trailing = (1,) * (x.dim() - 2)
        return y * self.weight.view(-1, *trailing) + self.bias.view(-1, *trailing)

    def training_statistics(self, shape: Shape) -> list[Extent]:
        return [per_sample(shape, self.groups)]


ENTRY = NormSpec(builder=GroupRMSNorm, grouped=True, batch_statistics=False,
                 statistics=GroupRMSNorm.training_statistics, options={"eps": EPS}, module_types=(GroupRMSNorm,))
