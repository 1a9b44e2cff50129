"""What one training statistic of a norm layer is taken over, and how many values it covers.

Each registered norm says, through its registry entry's `statistics(layer, shape)`, the extents of the
statistics its layer computes in training for an input of `shape` = (N, C, H, W), N None while the
batch is not known: `[(what it is taken over, how many values), ...]`, a count that needs the
unknown batch being None. `models.norms.statistics` refuses a layer whose statistic would cover a
single value. These helpers write the two common extents the same way for every layer.
"""
from __future__ import annotations

import math

Shape = tuple  # (N or None, C, H, W)
Extent = tuple[str, "int | None"]


def per_sample(shape: Shape, groups: int, part: str = "") -> Extent:
    """One statistic per sample and group of C/G channels, over those channels × H×W (GN)."""
    c, spatial = shape[1], math.prod(shape[2:])
    return f"{part}per sample over {c // groups} channel(s) × H×W", c // groups * spatial


def per_channel(shape: Shape, part: str = "") -> Extent:
    """One statistic per channel, over the batch × H×W (BN)."""
    n, spatial = shape[0], math.prod(shape[2:])
    return f"{part}per channel over N×H×W", None if n is None else n * spatial


def no_statistics(layer, shape: Shape) -> list[Extent]:
    """A layer that normalizes nothing (`none`)."""
    return []
