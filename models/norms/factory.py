"""`make_norm(name, num_channels, groups=32, **options)`: a registered norm layer, options checked.

Unknown names and options, and option values outside their range, are one line naming the layer
type and the value (`checks.py`) before anything is built.
"""
from __future__ import annotations

import inspect

from torch import nn

from models.norms.checks import NOISE_OPTIONS, check_options
from models.norms.noise import OutputNoise
from models.norms.registry import norm_spec


def check_norm_options(name: str, options: dict) -> None:
    """Refuse an unknown norm, an option it does not take, or an option value out of range."""
    builder = norm_spec(name).builder
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted) - set(NOISE_OPTIONS))
    if unknown:
        allowed = sorted(k for k in accepted if k not in ("num_channels", "groups")) + list(NOISE_OPTIONS)
        raise ValueError(f"norm {name!r} got unknown option(s) {unknown}; allowed: {allowed}")
    check_options(name, options)


def make_norm(name: str, num_channels: int, groups: int = 32, **options) -> nn.Module:
    """Build the normalization layer `name` for `num_channels` channels.

    `noise_mean`, `noise_std` (default 0), `noise_granularity` (element | group) are accepted by every
    layer: when any is given the layer is wrapped in `noise.OutputNoise` (training-only Gaussian noise
    on its output, Gunawan, Yin & Zhang 2022, §3.2.1).
    """
    check_norm_options(name, options)
    noise = {key: options.pop(key) for key in NOISE_OPTIONS if key in options}
    layer = norm_spec(name).builder(num_channels, groups, **options)
    if not noise:
        return layer
    return OutputNoise(layer, name, num_channels, groups, noise.get("noise_mean", 0.0), noise.get("noise_std", 0.0),
                       noise.get("noise_granularity", "element"))
