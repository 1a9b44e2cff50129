"""The checks every norm layer shares: option ranges, group counts, and statistics of one value.

Each is one line naming the layer type, the value and what is allowed, so the CLI can print it as
`normlab: error: ...`. Option values are checked before a layer is built (`make_norm`, against the
ranges its registry entry lists): ε > 0 keeps 1/√(σ² + ε) finite for a constant input (Ioffe &
Szegedy 2015, §3, Algorithm 1), and a running-average momentum outside [0, 1] extrapolates instead
of averaging (torch's BatchNorm2d: r ← (1 − m)·r + m·x̂). A statistic computed from a single value
is x − μ = 0: the layer's output is then its β whatever the input (`check_batch_values` in the
forward pass; `models.norms.statistics` finds such layers from the backbone's shapes before training).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from value_ranges import Range, check_values, finite_number, integer, number_in

# The ranges of the options several layers share; a registry entry lists those its builder takes.
EPS = finite_number(above=0)
MOMENTUM = number_in("[0, 1]").or_none("cumulative average").described(
    "a number in [0, 1] (the running-average weight of the new batch) or null (cumulative average)")
LAMBDA_INIT = finite_number().described("a finite number (λ; the GN weight is σ(λ))")
EXAMPLES_PER_GROUP = integer(1).or_none("the whole batch")


def check_options(layer: str, ranges: Mapping[str, Range], options: Mapping[str, Any]) -> None:
    """Fail with one line on the first option whose value is outside its range."""
    check_values(f"norm {layer!r}: ", ranges, options)


def check_groups(layer: str, num_channels: int, groups: int) -> None:
    """Fail with one clear line when `groups` cannot split `num_channels` channels."""
    if groups < 1 or num_channels % groups:
        divisors = [g for g in range(1, num_channels + 1) if num_channels % g == 0]
        raise ValueError(
            f"norm {layer!r}: groups={groups} does not divide num_channels={num_channels}; "
            f"allowed group counts for {num_channels} channels: {divisors}"
        )


def check_batch_values(layer: str, x: torch.Tensor, values_per_statistic: int, over: str) -> None:
    """Fail with one clear line when a batch statistic would be computed from a single value."""
    if values_per_statistic < 2:
        raise ValueError(
            f"norm {layer!r} computes batch statistics over {over} but input shape {tuple(x.shape)} gives "
            f"{values_per_statistic} value per statistic; use batches of at least 2 (e.g. drop_last=True)"
        )
