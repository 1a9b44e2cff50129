"""Initialisation of the CIFAR backbones: Kaiming-normal convs, norms γ = 1, β = 0, λ as set.

Reference: He et al. 2015 ("Delving Deep into Rectifiers"), a zero-mean normal with std = √(2 / fan_out),
fan_out = out_channels · k_h · k_w (torchvision's mode for these networks). The sample std of n draws
has relative standard error ≈ 1/√(2n); the tolerance is 6 of those.
"""
import math

import pytest
import torch
from torch import nn

from models.norms import GNPlus
from tests.models.backbone_probe import GNPLUS_NORMS, NORMS, build_recorded, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backbone", ["vgg11", "resnet18", "resnet50", "densenet121"])
def test_convolutions_are_kaiming_normal(backbone):
    torch.manual_seed(0)
    net, _ = build_recorded(backbone, "bn")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        n = conv.weight.numel()
        expected_std = math.sqrt(2 / (conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]))
        assert abs(conv.weight.std().item() / expected_std - 1) < 6 / math.sqrt(2 * n)
        assert abs(conv.weight.mean().item()) < 6 * expected_std / math.sqrt(n)
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize("norm", NORMS)
def test_norm_layers_start_at_unit_scale_zero_shift(norm):
    options = {"lambda_init": 0.25} if norm in GNPLUS_NORMS else {}
    _, norm_modules = build_recorded("resnet18", norm, norm_options=options)
    for module in norm_modules:
        for name, param in module.named_parameters():
            if name.endswith("weight"):
                assert torch.equal(param, torch.ones_like(param)), name
            elif name.endswith("bias"):
                assert torch.equal(param, torch.zeros_like(param)), name
        if isinstance(module, GNPlus):
            assert module.lambda_.item() == 0.25
    assert (norm in GNPLUS_NORMS) == any(isinstance(m, GNPlus) for m in norm_modules)
