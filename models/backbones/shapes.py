"""The input shape of every norm layer of a backbone, found without computing anything.

The backbone is built a second time on the meta device (tensors with a shape and no storage) with a
recorder in each norm layer's place, and one meta forward pass gives each recorder its input shape.
A norm layer keeps its input's shape, so these are the real network's shapes, under the same module
paths. `models.norms.statistics.check_norm_inputs` checks the norm layers against them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class _ShapeRecorder(nn.Module):
    def __init__(self, num_channels: int):
        super().__init__()
        self.shape: tuple[int, ...] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shape = tuple(x.shape[1:])
        return x


def norm_input_shapes(constructor: Callable[..., nn.Module], in_channels: int, image_size: int,
                      batch_size: int | None = None, **backbone_options) -> dict[str, tuple]:
    """{module path of each norm layer: its input shape (batch_size, C, H, W)} for `image_size` inputs."""
    with torch.device("meta"):
        probe = constructor(num_classes=2, in_channels=in_channels, norm_layer=_ShapeRecorder,
                            image_size=image_size, **backbone_options)
        probe(torch.empty(1, in_channels, image_size, image_size))
    return {path: (batch_size, *m.shape) for path, m in probe.named_modules()
            if isinstance(m, _ShapeRecorder) and m.shape is not None}
