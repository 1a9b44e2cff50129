"""`make_norm(name, num_channels, groups=32, **options)`: a registered norm layer, options checked.

Unknown names and options, and option values outside their range (the registry entry's `options`,
and `OutputNoise.OPTIONS`, which every layer takes), are one line naming the layer type and the
value before anything is built.
"""
from __future__ import annotations

from torch import nn

from models.norms.checks import check_options
from models.norms.noise import OutputNoise
from models.norms.registry import norm_spec


def check_norm_options(name: str, options: dict) -> None:
    """Refuse an unknown norm, an option it does not take, or an option value out of range."""
    own = norm_spec(name).options
    ranges = {**own, **OutputNoise.OPTIONS}
    unknown = sorted(set(options) - set(ranges))
    if unknown:
        allowed = sorted(own) + list(OutputNoise.OPTIONS)
        raise ValueError(f"norm {name!r} got unknown option(s) {unknown}; allowed: {allowed}")
    check_options(name, ranges, options)


def make_norm(name: str, num_channels: int, groups: int = 32, **options) -> nn.Module:
    """Build the normalization layer `name` for `num_channels` channels.

    `noise_mean`, `noise_std` (default 0), `noise_granularity` (element | group) are accepted by every
    layer: when any is given the layer is wrapped in `noise.OutputNoise` (training-only Gaussian noise
    on its output, Gunawan, Yin & Zhang 2022, §3.2.1).
    """
    check_norm_options(name, options)
    noise = {key: options.pop(key) for key in OutputNoise.OPTIONS if key in options}
    layer = norm_spec(name).builder(num_channels, groups, **options)
    if not noise:
        return layer
    return OutputNoise(layer, name, num_channels, groups, noise.get("noise_mean", 0.0), noise.get("noise_std", 0.0),
                       noise.get("noise_granularity", "element"))
