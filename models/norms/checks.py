"""The checks every norm layer shares: option values, group counts, and statistics of one value.

Each is one line naming the layer type, the value and what is allowed, so the CLI can print it as
`normlab: error: ...`. Option values are checked before a layer is built (`check_options`, by the
backbone builder for the whole network, then by each layer's factory call):
ε > 0 keeps 1/√(σ² + ε) finite for a constant input (Ioffe & Szegedy 2015, §3, Algorithm 1), and a
running-average momentum outside [0, 1] extrapolates instead of averaging (torch's BatchNorm2d:
r ← (1 − m)·r + m·x̂). A statistic computed from a single value is x − μ = 0: the layer's output is
then its β whatever the input (`check_batch_values` in the forward pass; `models.norms.statistics`
finds such layers from the backbone's shapes before training).
"""
from __future__ import annotations

import torch

from value_ranges import is_finite_number, is_integer

NOISE_OPTIONS = ("noise_mean", "noise_std", "noise_granularity")
NOISE_GRANULARITIES = ("element", "group")


# option -> (predicate, what is allowed); an option a layer does not take is reported by make_norm.
OPTION_RANGES = {
    "eps": (lambda v: is_finite_number(v) and v > 0, "a finite number > 0"),
    "momentum": (lambda v: v is None or (is_finite_number(v) and 0 <= v <= 1),
                 "a number in [0, 1] (the running-average weight of the new batch) or null (cumulative average)"),
    "lambda_init": (is_finite_number, "a finite number (λ; the GN weight is σ(λ))"),
    "examples_per_group": (lambda v: v is None or (is_integer(v) and v >= 1),
                           "an integer >= 1 or null (the whole batch)"),
    "reference_arithmetic": (lambda v: isinstance(v, bool), "true or false"),
    "noise_mean": (is_finite_number, "a finite number"),
    "noise_std": (lambda v: is_finite_number(v) and v >= 0, "a finite number >= 0"),
    "noise_granularity": (lambda v: v in NOISE_GRANULARITIES, ", ".join(NOISE_GRANULARITIES)),
}


def check_options(layer: str, options: dict) -> None:
    """Fail with one line on the first option whose value is outside its range."""
    for key, value in options.items():
        if key in OPTION_RANGES:
            valid, allowed = OPTION_RANGES[key]
            if not valid(value):
                raise ValueError(f"norm {layer!r}: {key}={value!r}; allowed: {allowed}")


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
