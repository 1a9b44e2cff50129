"""The norm-layer registry and `make_norm(name, num_channels, groups=32, **options)`.

Each registered builder has the uniform signature `(num_channels, groups, **options)`, so names are
interchangeable in configs. Errors are one line and name the layer type and the offending value.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

NormBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, NormBuilder] = {}
# Module classes whose parameters count as "normalization parameters" (weight decay, λ groups).
_NORM_MODULE_TYPES: list[type] = [nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm]


def register_norm(name: str, *module_types: type) -> Callable[[NormBuilder], NormBuilder]:
    """Register `builder(num_channels, groups, **options)` under `name`."""

    def decorator(builder: NormBuilder) -> NormBuilder:
        if name in _REGISTRY:
            raise ValueError(f"norm name {name!r} is registered twice")
        _REGISTRY[name] = builder
        register_norm_type(*module_types)
        return builder

    return decorator


def register_norm_type(*module_types: type) -> None:
    """Count `module_types` as normalization layers (their parameters join the `norm` group)."""
    _NORM_MODULE_TYPES.extend(t for t in module_types if t not in _NORM_MODULE_TYPES)


def norm_names() -> list[str]:
    """The registered norm names, in registration order."""
    _ensure_registered()
    return list(_REGISTRY)


def is_norm_module(module: nn.Module) -> bool:
    """True for every normalization layer the factory can build (and torch's own)."""
    _ensure_registered()
    return isinstance(module, tuple(_NORM_MODULE_TYPES))


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


NOISE_OPTIONS = ("noise_mean", "noise_std", "noise_granularity")


def make_norm(name: str, num_channels: int, groups: int = 32, **options) -> nn.Module:
    """Build the normalization layer `name` for `num_channels` channels.

    `noise_mean`, `noise_std` (default 0), `noise_granularity` (element | group) are accepted by every
    layer: when any is given the layer is wrapped in `noise.OutputNoise` (training-only Gaussian noise
    on its output, GN paper §3.2.1).
    """
    _ensure_registered()
    if name not in _REGISTRY:
        raise ValueError(f"unknown norm {name!r}; allowed: {', '.join(_REGISTRY)}")
    noise = {key: options.pop(key) for key in NOISE_OPTIONS if key in options}
    builder = _REGISTRY[name]
    accepted = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(options) - set(accepted)) if not takes_any else []
    if unknown:
        allowed = sorted(k for k in accepted if k not in ("num_channels", "groups")) + list(NOISE_OPTIONS)
        raise ValueError(f"norm {name!r} got unknown option(s) {unknown}; allowed: {allowed}")
    layer = builder(num_channels, groups, **options)
    if not noise:
        return layer
    from models.norms.noise import OutputNoise

    return OutputNoise(layer, name, num_channels, groups, noise.get("noise_mean", 0.0), noise.get("noise_std", 0.0),
                       noise.get("noise_granularity", "element"))


def _ensure_registered() -> None:
    # Importing the layer modules runs their @register_norm decorators (lazy: they import this file).
    from models.norms import basic, candidates, gn_plus  # noqa: F401
