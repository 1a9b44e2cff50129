"""GNPlus: GroupNorm and BatchNorm mixed by a learnable weight (the GN paper, §4).

"Understanding and Improving Group Normalization" (seed 000) proposes three ways to combine a
GN part and a BN part, both without affine parameters, with s = σ(λ), one scalar λ per layer
(initialised to 1, so s ≈ 0.73 favours GN), followed by one per-channel γ, β:

- `gn_plus_parallel`:  y = γ⊙[s·GN(x) + (1−s)·BN(x)] + β
- `gn_plus_gn_first`:  z = GN(x);  y = γ⊙[s·z + (1−s)·BN(z)] + β
- `gn_plus_bn_first`:  z = BN(x);  y = γ⊙[s·GN(z) + (1−s)·z] + β

The BN part is an `nn.BatchNorm2d(affine=False)` submodule: it keeps running statistics (used in
eval, so test accuracy does not depend on the test batch) and `SyncBatchNorm.convert_sync_batchnorm`
reaches it. Every variant subclasses `GNPlus`, so callbacks find each λ by type: `lambda_` is the raw
parameter and `gn_weight` the read-only σ(λ).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.norms.factory import check_groups, register_norm


class GNPlus(nn.Module):
    """Shared parts of the three GNPlus layers; subclasses define `mix(x, s)`."""

    name = "gn_plus"

    def __init__(self, num_channels: int, groups: int = 32, lambda_init: float = 1.0, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        check_groups(self.name, num_channels, groups)
        self.num_channels, self.groups, self.eps = num_channels, groups, eps
        self.bn = nn.BatchNorm2d(num_channels, eps=eps, momentum=momentum, affine=False)
        self.lambda_ = nn.Parameter(torch.tensor(float(lambda_init)))
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    @property
    def gn_weight(self) -> torch.Tensor:
        """σ(λ), the weight on the GN output (detached: for logging, not for the graph)."""
        return torch.sigmoid(self.lambda_.detach())

    def group_norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.groups, eps=self.eps)

    def mix(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(x, torch.sigmoid(self.lambda_))
        return torch.addcmul(self.bias[:, None, None], y, self.weight[:, None, None])

    def extra_repr(self) -> str:
        return f"{self.num_channels}, groups={self.groups}, eps={self.eps}"


class GNPlusParallel(GNPlus):
    name = "gn_plus_parallel"

    def mix(self, x, s):
        return s * self.group_norm(x) + (1 - s) * self.bn(x)


class GNPlusGNFirst(GNPlus):
    name = "gn_plus_gn_first"

    def mix(self, x, s):
        z = self.group_norm(x)
        return s * z + (1 - s) * self.bn(z)


class GNPlusBNFirst(GNPlus):
    name = "gn_plus_bn_first"

    def mix(self, x, s):
        z = self.bn(x)
        return s * self.group_norm(z) + (1 - s) * z


def _register(cls: type[GNPlus]) -> None:
    @register_norm(cls.name, cls)
    def build(num_channels: int, groups: int, lambda_init: float = 1.0, eps: float = 1e-5,
              momentum: float = 0.1) -> nn.Module:
        return cls(num_channels, groups, lambda_init=lambda_init, eps=eps, momentum=momentum)


for _cls in (GNPlusParallel, GNPlusGNFirst, GNPlusBNFirst):
    _register(_cls)
