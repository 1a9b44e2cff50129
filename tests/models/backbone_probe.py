"""Test helper: build a backbone while recording every module the norm factory hands it.

Counting the modules the factory returned (instead of counting by type) covers every norm name,
including stacked ones and names registered after this file was written.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models.backbones import BACKBONES, norm_layer_factory
from models.norms import GNPlus, make_norm, norm_names

BACKBONE_NAMES = list(BACKBONES)
NORMS = norm_names()
GNPLUS_NORMS = [n for n in NORMS if isinstance(make_norm(n, 64, groups=32), GNPlus)]
# Norm layers per architecture, from the papers' layer lists:
NORM_LAYERS = {
    "small_cnn": 2,                   # one after each of the 2 convs
    "vgg11": 8,                       # one after each of the 8 convs of configuration A
    "resnet18": 1 + 8 * 2 + 3,        # stem, 8 BasicBlocks × 2, 3 projection shortcuts
    "resnet50": 1 + 16 * 3 + 4,       # stem, 16 Bottlenecks × 3, 4 projection shortcuts
    "densenet121": 58 * 2 + 3 + 1,    # 6+12+24+16 = 58 dense layers × 2, 3 transitions, the final norm
}


def build_recorded(backbone: str, norm: str, groups: int = 8, num_classes: int = 10, in_channels: int = 3,
                   image_size: int = 32, policy: str = "strict", norm_options: dict | None = None,
                   **backbone_options) -> tuple[nn.Module, list[nn.Module]]:
    """(network, the norm modules the factory made for it, in construction order)."""
    factory = norm_layer_factory(norm, groups, policy, **(norm_options or {}))
    made: list[nn.Module] = []

    def norm_layer(num_channels: int) -> nn.Module:
        made.append(factory(num_channels))
        return made[-1]

    net = BACKBONES[backbone](num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer,
                              image_size=image_size, **backbone_options)
    return net, made


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine 2 threads spin against other work (10× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
