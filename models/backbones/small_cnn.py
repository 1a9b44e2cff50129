"""The course report's small CNN (Sridhar, Azim & Talegaonkar 2018, "A Comparison of Batch
Normalization and Group Normalization", §III): conv 16 3×3 → norm → ReLU → max-pool 2 → conv 32
3×3 → norm → ReLU → max-pool 2 → FC 256 → ReLU → FC classes. Convolutions are 'same'-padded so any
input size works.
"""
from __future__ import annotations

from typing import Callable

from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, norm_layer: Callable[[int], nn.Module],
                 image_size: int = 32, widths: tuple[int, int] = (16, 32), hidden: int = 256):
        super().__init__()
        c1, c2 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), norm_layer(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), norm_layer(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))
