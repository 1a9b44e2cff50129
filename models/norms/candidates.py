"""The GN/BN combinations the GN paper's appendix A.5 compared before proposing GNPlus.

Gunawan, Yin & Zhang 2022 ("Understanding and Improving Group Normalization", appendix A.5) report
that these three fail (gradients vanish) at lr 1e-3, batch 4 on VGG-11 / CIFAR-10, where GNPlus trains:
- `gn_then_bn`: BN stacked after GN, each with its own affine parameters: y = BN(GN(x)).
- `bgn`: Batch Group Normalization (Zhou et al. 2020): the C·H·W axis is merged and split into G
  groups; each group is normalized with statistics over the batch and the group's elements.
- `gbgn`: General Batch-Group Normalization (Summers & Dinneen 2020): statistics over a group of
  `examples_per_group` examples × a group of C/G channels × (H, W). With all examples in one group
  and G = C it is BN; with one example per group it is GN (train and eval).

`bgn` and `gbgn` are one layer, `BatchGroupNorm`: x is viewed as (N/E, E, G, C·H·W/G) and normalized
over (E, C·H·W/G), then γ, β per channel. Like BN they keep running estimates (momentum 0.1, unbiased
variance) of the per-group statistics, averaged over example groups, and use them in eval; with one
example per group there is no batch in the statistics, so eval computes them from the input as GN does.
When the groups are whole channels (G divides C: always for `gbgn`) the statistics come from per-(n, c)
moments and the layer is one fused multiply-add (`moments.MomentAffine`, as GNPlus); `bgn` groups that
cut across channels normalize the merged axis directly.
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from models.norms.basic import batch_norm_2d
from models.norms.checks import EPS, EXAMPLES_PER_GROUP, MOMENTUM, check_batch_values, check_groups, check_options
from models.norms.extents import Extent, Shape, per_channel, per_sample
from models.norms.moments import MomentAffine, mean_of_first_axis, mean_of_last_axis, update_running_statistics


class GNThenBN(nn.Module):
    """y = BN(GN(x)), both with affine parameters; `weight`, `bias` are the final (BN) γ, β."""

    def __init__(self, num_channels: int, groups: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        check_groups("gn_then_bn", num_channels, groups)
        self.gn = nn.GroupNorm(groups, num_channels, eps=eps)
        self.bn = batch_norm_2d(num_channels, layer="gn_then_bn", eps=eps, momentum=momentum)

    @property
    def weight(self) -> torch.Tensor:
        return self.bn.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.bn.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.gn(x))

    def training_statistics(self, shape: Shape) -> list[Extent]:
        return [per_sample(shape, self.gn.num_groups, "GN part: "), per_channel(shape, "BN part: ")]


class BatchGroupNorm(nn.Module):
    """Normalization over (examples_per_group examples) × (one of G groups of the merged C·H·W axis)."""

    track_running_stats = True  # read by moments.update_running_statistics, as on a BatchNorm module
    OPTIONS = {"examples_per_group": EXAMPLES_PER_GROUP, "eps": EPS, "momentum": MOMENTUM}

    def __init__(self, num_channels: int, groups: int, examples_per_group: int | None = None, eps: float = 1e-5,
                 momentum: float | None = 0.1, name: str = "bgn"):
        super().__init__()
        check_options(name, self.OPTIONS, {"examples_per_group": examples_per_group, "eps": eps, "momentum": momentum})
        self.name, self.num_channels, self.groups, self.eps, self.momentum = name, num_channels, groups, eps, momentum
        self.examples_per_group = examples_per_group
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(groups))
        self.register_buffer("running_var", torch.ones(groups))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        per_group = n if self.examples_per_group is None else self.examples_per_group
        use_batch_statistics = self.training or per_group == 1
        if not use_batch_statistics:
            per_group = n  # eval with the running estimates: the grouping of examples plays no part
        if n % per_group or x[0].numel() % self.groups:
            raise ValueError(f"norm {self.name!r}: input shape {tuple(x.shape)} does not split into groups of "
                             f"{per_group} examples and {self.groups} groups of C·H·W")
        count = per_group * (x[0].numel() // self.groups)
        if use_batch_statistics:
            check_batch_values(self.name, x, count, f"{per_group} example(s) × a group of C·H·W")
        if x.shape[1] % self.groups == 0:
            # Groups of whole channels: statistics from per-(n, c) moments, one fused multiply-add.
            running = () if use_batch_statistics else (self.running_mean, self.running_var)
            y, *record = MomentAffine.apply(x, partial(self._coefficients, per_group), self.weight, self.bias,
                                            *running)
        else:
            y, record = self._merged_axis_groups(x, per_group, use_batch_statistics)
        if record and per_group > 1:
            update_running_statistics(self, *record, count)
        return y

    def _coefficients(self, per_group, mean, var, weight, bias, *running):
        """(A, B, per-group batch statistics to record) per (n, c), from x's per-(n, c) moments."""
        n, c = mean.shape
        width = c // self.groups

        def blocks(t):  # (N, C) -> (example groups, G, examples × channels of the group)
            return t.view(n // per_group, per_group, self.groups, width).transpose(1, 2).reshape(
                n // per_group, self.groups, per_group * width)

        def per_sample_channel(t):  # (example groups, G, 1) -> (N, C)
            return t.expand(-1, -1, per_group * width).reshape(n // per_group, self.groups, per_group, width) \
                .transpose(1, 2).reshape(n, c)

        if running:
            block_mean, block_var = (r.to(mean.dtype).repeat_interleave(width).expand(n, c) for r in running)
            record = ()
        else:
            mean_blocks = blocks(mean)
            block_mean = mean_of_last_axis(mean_blocks)
            block_var = mean_of_last_axis(blocks(var)) + mean_of_last_axis((mean_blocks - block_mean).pow(2))
            record = tuple(mean_of_first_axis(t.squeeze(-1)).detach() for t in (block_mean, block_var))
            block_mean, block_var = per_sample_channel(block_mean), per_sample_channel(block_var)
        scale = torch.rsqrt(block_var + self.eps) * weight.to(mean.dtype)
        return scale, bias.to(mean.dtype) - block_mean * scale, record

    def _merged_axis_groups(self, x, per_group, use_batch_statistics):
        """Groups that cut across channels (bgn with G not dividing C): normalize the merged C·H·W axis."""
        blocks = x.reshape(x.shape[0] // per_group, per_group, self.groups, -1)
        record = ()
        if use_batch_statistics:
            var, mean = torch.var_mean(blocks, dim=(1, 3), unbiased=False, keepdim=True)
            record = (mean.detach().mean(0).flatten(), var.detach().mean(0).flatten())
        else:
            mean, var = self.running_mean.view(1, 1, -1, 1), self.running_var.view(1, 1, -1, 1)
        y = ((blocks - mean) * torch.rsqrt(var + self.eps)).view_as(x)
        trailing = (1,) * (x.dim() - 2)
        return torch.addcmul(self.bias.view(-1, *trailing), y, self.weight.view(-1, *trailing)), record

    def extra_repr(self) -> str:
        return (f"{self.num_channels}, groups={self.groups}, examples_per_group={self.examples_per_group}, "
                f"eps={self.eps}, momentum={self.momentum}")

    def training_statistics(self, shape: Shape) -> list[Extent]:
        """One statistic per group of examples and group of the C·H·W axis."""
        n, c, spatial = shape[0], shape[1], math.prod(shape[2:])
        examples = self.examples_per_group or n
        over = f"{self.examples_per_group or 'N'} example(s) × a group of C·H·W/{self.groups}"
        return [(over, None if examples is None else examples * c * spatial // self.groups)]


def gn_then_bn(num_channels: int, groups: int, eps: float = 1e-5, momentum: float | None = 0.1) -> nn.Module:
    return GNThenBN(num_channels, groups, eps=eps, momentum=momentum)


def batch_group_norm(num_channels: int, groups: int, eps: float = 1e-5, momentum: float | None = 0.1) -> nn.Module:
    return BatchGroupNorm(num_channels, groups, eps=eps, momentum=momentum, name="bgn")


def general_batch_group_norm(num_channels: int, groups: int, examples_per_group: int | None = None,
                             eps: float = 1e-5, momentum: float | None = 0.1) -> nn.Module:
    check_groups("gbgn", num_channels, groups)
    return BatchGroupNorm(num_channels, groups, examples_per_group, eps=eps, momentum=momentum, name="gbgn")


def check_batch_group_inputs(norm: str, layers: dict[str, nn.Module], shapes: dict[str, Shape], batch: str) -> None:
    """`bgn`, `gbgn` at start-up: each layer's C·H·W must split into its G groups (bgn: Zhou et al. 2020,
    §3), and the per-device batch into groups of `examples_per_group` (gbgn: Summers & Dinneen 2020, §4)."""
    sizes = {path: math.prod(shapes[path][1:]) for path in layers}
    for path, layer in layers.items():
        if sizes[path] % layer.groups:
            c, *spatial = shapes[path][1:]
            common = math.gcd(*sizes.values())
            raise ValueError(
                f"norm {norm!r} at {path}: norm_groups={layer.groups} does not divide its input's C·H·W = "
                f"{c}·{'·'.join(map(str, spatial))} = {sizes[path]}; allowed group counts for this network: "
                f"{[d for d in range(1, min(common, 128) + 1) if common % d == 0]}")
    for path, layer in layers.items():
        n = shapes[path][0]
        if n is not None and n % (layer.examples_per_group or 1):
            raise ValueError(f"norm {norm!r}: {batch} gives {n} images per device, which do not split into "
                             f"groups of examples_per_group={layer.examples_per_group}; use a multiple of "
                             f"{layer.examples_per_group} per device")
