"""GNPlus: GroupNorm and BatchNorm mixed by a learnable weight (the GN paper, §4).

Gunawan, Yin & Zhang 2022 ("Understanding and Improving Group Normalization", §4, Fig. 1) propose
three ways to combine a GN part and a BN part, both without affine parameters, with s = σ(λ), one
scalar λ per layer (initialised to 1, so s ≈ 0.73 favours GN), followed by one per-channel γ, β:

- `gn_plus_parallel`:  y = γ⊙[s·GN(x) + (1−s)·BN(x)] + β
- `gn_plus_gn_first`:  z = GN(x);  y = γ⊙[s·z + (1−s)·BN(z)] + β
- `gn_plus_bn_first`:  z = BN(x);  y = γ⊙[s·GN(z) + (1−s)·z] + β

The BN part is an `nn.BatchNorm2d(affine=False)` submodule: it keeps running statistics (used in
eval, so test accuracy does not depend on the test batch) and `SyncBatchNorm.convert_sync_batchnorm`
reaches it. Every variant subclasses `GNPlus`, so callbacks find each λ by type: `lambda_` is the raw
parameter and `gn_weight` the read-only σ(λ).

Three arithmetic paths, one formula each:
- default: every variant is y[n,c] = A[n,c]·x[n,c] + B[n,c] with A, B computed from x's
  per-(sample, channel) moments (`moments.MomentAffine`): one read for the statistics, one
  multiply-add, a fused backward; the BN part's running statistics are updated exactly as
  `nn.BatchNorm2d` would update them (momentum, unbiased running variance);
- the BN part replaced by another module (e.g. `nn.SyncBatchNorm` in multi-GPU runs): the plain
  composition `mix` with that module, so statistics span the global batch;
- `reference_arithmetic=True`: the paper's published code's formulas (`reference_arithmetic`), also via `mix`.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from models.norms.checks import EPS, LAMBDA_INIT, MOMENTUM, check_batch_values, check_groups
from models.norms.extents import Extent, Shape, per_channel, per_sample
from models.norms.moments import (MomentAffine, batch_statistics, compute_dtype, group_statistics,
                                  update_running_statistics)
from models.norms.reference_arithmetic import reference_batch_norm, reference_group_norm
from value_ranges import BOOLEAN


class GNPlus(nn.Module):
    """Shared parts of the three GNPlus layers.

    Subclasses define the mix twice, from the same formula: `mix(x, s, group_norm, batch_norm)` as a
    composition of whole-tensor normalizations, and `mix_coefficients(...)` as the per-(n, c) scale
    and shift that composition amounts to.
    """

    name = "gn_plus"
    OPTIONS = {"lambda_init": LAMBDA_INIT, "eps": EPS, "momentum": MOMENTUM, "reference_arithmetic": BOOLEAN}

    def __init__(self, num_channels: int, groups: int = 32, lambda_init: float = 1.0, eps: float = 1e-5,
                 momentum: float | None = 0.1, reference_arithmetic: bool = False):
        super().__init__()
        check_groups(self.name, num_channels, groups)
        self.num_channels, self.groups, self.eps = num_channels, groups, eps
        self.reference_arithmetic = reference_arithmetic
        # The reference code's BN part has no running statistics, so in that mode there is no BatchNorm module.
        self.bn = None if reference_arithmetic else nn.BatchNorm2d(num_channels, eps=eps, momentum=momentum,
                                                                   affine=False)
        self.lambda_ = nn.Parameter(torch.tensor(float(lambda_init)))
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    @property
    def gn_weight(self) -> torch.Tensor:
        """σ(λ), the weight on the GN output (detached: for logging, not for the graph)."""
        return torch.sigmoid(self.lambda_.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference_arithmetic:
            group_norm = partial(reference_group_norm, groups=self.groups, eps=self.eps)
            return self._affine(self.mix(x, torch.sigmoid(self.lambda_), group_norm,
                                         partial(reference_batch_norm, eps=self.eps, layer=self.name)))
        if self.bn.training or self.bn.running_mean is None:
            check_batch_values(self.name, x, x.numel() // max(x.shape[1], 1), "(N, H, W) per channel")
        if type(self.bn) is not nn.BatchNorm2d:
            group_norm = partial(F.group_norm, num_groups=self.groups, eps=self.eps)
            return self._affine(self.mix(x, torch.sigmoid(self.lambda_), group_norm, self.bn))
        use_batch_statistics = self.training or self.bn.running_mean is None
        running = () if use_batch_statistics else (self.bn.running_mean, self.bn.running_var)
        y, *bn_batch_statistics = MomentAffine.apply(x, self._coefficients, self.lambda_, self.weight, self.bias,
                                                     *running)
        if bn_batch_statistics:
            update_running_statistics(self.bn, *bn_batch_statistics, count=x.numel() // x.shape[1])
        return y

    def _affine(self, y: torch.Tensor) -> torch.Tensor:
        trailing = (1,) * (y.dim() - 2)
        return torch.addcmul(self.bias.view(-1, *trailing), y, self.weight.view(-1, *trailing))

    def _coefficients(self, mean, var, lambda_, weight, bias, *running):
        """(A, B, BN-part batch statistics) of γ⊙mix + β, from x's per-(n, c) moments."""
        dtype = mean.dtype
        scale, shift, bn_batch_statistics = self.mix_coefficients(mean, var, torch.sigmoid(lambda_.to(dtype)),
                                                                  [r.to(dtype) for r in running])
        weight, bias = weight.to(dtype), bias.to(dtype)
        return scale * weight, shift * weight + bias, bn_batch_statistics

    def _bn_part(self, mean, var, running):
        """The BN part's (mean, var) per channel, and the batch statistics to record (none in eval)."""
        if running:
            return running[0], running[1], ()
        channel_mean, channel_var = batch_statistics(mean, var)
        return channel_mean, channel_var, (channel_mean.detach(), channel_var.detach())

    def mix(self, x, s, group_norm, batch_norm):
        raise NotImplementedError

    def mix_coefficients(self, mean, var, s, running):
        raise NotImplementedError

    def extra_repr(self) -> str:
        arithmetic = ", reference_arithmetic=True" if self.reference_arithmetic else ""
        return f"{self.num_channels}, groups={self.groups}, eps={self.eps}{arithmetic}"

    def training_statistics(self, shape: Shape) -> list[Extent]:
        """The GN part's statistic per sample and group; the BN part's per channel over N×H×W, or per
        (C, H, W) position over the batch with the reference arithmetic."""
        bn_part = ("BN part: per (C, H, W) position over the batch", shape[0]) if self.reference_arithmetic \
            else per_channel(shape, "BN part: ")
        return [per_sample(shape, self.groups, "GN part: "), bn_part]


def _normalizer(mean, var, eps):
    """(a, b) with (x − mean)/√(var + ε) = a·x + b."""
    inv_std = torch.rsqrt(var + eps)
    return inv_std, -mean * inv_std


class GNPlusParallel(GNPlus):
    name = "gn_plus_parallel"

    def mix(self, x, s, group_norm, batch_norm):
        return s * group_norm(x) + (1 - s) * batch_norm(x)

    def mix_coefficients(self, mean, var, s, running):
        gn_scale, gn_shift = _normalizer(*group_statistics(mean, var, self.groups), self.eps)
        bn_mean, bn_var, record = self._bn_part(mean, var, running)
        bn_scale, bn_shift = _normalizer(bn_mean, bn_var, self.eps)
        return s * gn_scale + (1 - s) * bn_scale, s * gn_shift + (1 - s) * bn_shift, record


class GNPlusGNFirst(GNPlus):
    name = "gn_plus_gn_first"

    def mix(self, x, s, group_norm, batch_norm):
        z = group_norm(x)
        return s * z + (1 - s) * batch_norm(z)

    def mix_coefficients(self, mean, var, s, running):
        # z = a·x + b per (n, c) has moments (a·mean + b, a²·var); BN of z follows from those.
        a, b = _normalizer(*group_statistics(mean, var, self.groups), self.eps)
        bn_mean, bn_var, record = self._bn_part(a * mean + b, a * a * var, running)
        bn_scale, bn_shift = _normalizer(bn_mean, bn_var, self.eps)
        k = s + (1 - s) * bn_scale
        return a * k, b * k + (1 - s) * bn_shift, record


class GNPlusBNFirst(GNPlus):
    name = "gn_plus_bn_first"

    def mix(self, x, s, group_norm, batch_norm):
        z = batch_norm(x)
        return s * group_norm(z) + (1 - s) * z

    def mix_coefficients(self, mean, var, s, running):
        # z = a·x + b per channel; GN of z follows from z's per-(n, c) moments (a·mean + b, a²·var).
        bn_mean, bn_var, record = self._bn_part(mean, var, running)
        a, b = _normalizer(bn_mean, bn_var, self.eps)
        gn_scale, gn_shift = _normalizer(*group_statistics(a * mean + b, a * a * var, self.groups), self.eps)
        k = s * gn_scale + (1 - s)
        return a * k, b * k + s * gn_shift, record

