"""Backbone options: zero_init_residual for every norm, VGG-11 heads and training without a
norm, `norm_groups_policy: clamp`, channels_last, and one-line errors for bad options.

zero_init_residual (Goyal et al. 2017) must make every residual block start as y = ReLU(shortcut(x)),
the reference computed here, whatever the norm, while the zeroed parameter still gets a gradient.
channels_last must compute the same function as the default layout.
"""
import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.backbones import BACKBONES, build_backbone
from models.backbones.resnet import BasicBlock, Bottleneck
from tests.models.backbone_probe import BACKBONE_NAMES, NORMS, build_recorded, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")
BLOCKS = {"resnet18": 8, "resnet50": 16}


def check_blocks_start_as_identity(backbone: str, norm: str, zero_init_residual: bool = True) -> None:
    torch.manual_seed(0)
    net, _ = build_recorded(backbone, norm, zero_init_residual=zero_init_residual)
    seen = []
    for block in net.modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            block.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out)))
    net(torch.randn(4, 3, 8, 8)).sum().backward()
    assert len(seen) == BLOCKS[backbone]
    for block, x, y in seen:
        identity = torch.allclose(y, F.relu(block.shortcut(x)))
        assert identity == zero_init_residual
        if zero_init_residual:  # exactly one weight tensor per block starts at zero, and it can learn
            (zeroed,) = [p for name, p in block.named_parameters()
                         if not name.endswith("bias") and not p.detach().any()]
            assert zeroed.grad is not None and zeroed.grad.any()


@pytest.mark.parametrize("norm", NORMS)
def test_zero_init_residual_resnet18(norm):
    check_blocks_start_as_identity("resnet18", norm)


def test_blocks_are_not_identities_by_default():
    check_blocks_start_as_identity("resnet18", "bn", zero_init_residual=False)


@pytest.mark.parametrize("norm", [pytest.param(n, marks=pytest.mark.slow) if n != "gn_plus_gn_first" else n
                                  for n in NORMS])
def test_zero_init_residual_resnet50(norm):
    check_blocks_start_as_identity("resnet50", norm)


def test_vgg11_heads():
    linear = build_backbone("vgg11", 10, 3, "bn", backbone_options={"head": "linear"})
    mlp = build_backbone("vgg11", 10, 3, "bn", backbone_options={"head": "mlp"})
    shapes = [(m.in_features, m.out_features) for m in mlp.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(512, 512), (512, 512), (512, 10)]  # the GN repository's analysis head
    linear_shapes = [(m.in_features, m.out_features) for m in linear.modules() if isinstance(m, nn.Linear)]
    assert linear_shapes == [(512, 10)]
    with pytest.raises(ValueError, match="vgg11 head must be one of linear, mlp, got 'conv'"):
        build_backbone("vgg11", 10, 3, "bn", backbone_options={"head": "conv"})


@pytest.mark.slow
def test_vgg11_without_norm_learns():
    # The GN paper's no-norm baseline needs VGG-11 to train without any norm: 20 Adam steps must fit
    # 20 noisy copies of 10 class prototypes (loss from ln 10 ≈ 2.30 to below a quarter of it).
    torch.manual_seed(0)
    net = build_backbone("vgg11", 10, 3, "none")
    y = torch.arange(10).repeat(2)
    x = torch.randn(10, 3, 16, 16)[y] + 0.5 * torch.randn(20, 3, 16, 16)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(10)) < 0.1 and losses[-1] < 0.25 * losses[0], losses


def test_clamp_policy_small_cnn(caplog):
    with pytest.raises(ValueError, match="groups=32 does not divide num_channels=16"):
        build_backbone("small_cnn", 10, 1, "gn", norm_groups=32, image_size=28)
    with caplog.at_level(logging.WARNING, logger="models.backbones"):
        net = build_backbone("small_cnn", 10, 1, "gn", norm_groups=32, image_size=28,
                             backbone_options={"norm_groups_policy": "clamp"})
    assert [m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)] == [16, 32]
    assert len(caplog.records) == 1 and "16 channels" in caplog.records[0].getMessage()
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_clamp_policy_densenet(caplog):
    clamp = {"norm_groups_policy": "clamp"}
    with pytest.raises(ValueError, match="groups=64 does not divide num_channels=96.*policy: clamp"):
        build_backbone("densenet121", 10, 3, "gn", norm_groups=64)
    with caplog.at_level(logging.WARNING, logger="models.backbones"), torch.device("meta"):
        net = build_backbone("densenet121", 10, 3, "gn", norm_groups=64, backbone_options=clamp)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 120
    assert all(m.num_groups == math.gcd(m.num_channels, 64) for m in norms)
    assert len(caplog.records) == sum(m.num_channels % 64 != 0 for m in norms) > 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="models.backbones"), torch.device("meta"):
        build_backbone("densenet121", 10, 3, "bn", norm_groups=64, backbone_options=clamp)
    assert not caplog.records  # BN has no groups: nothing clamped, nothing logged


def check_channels_last(backbone: str, norm: str, size: int) -> None:
    # In float64: float32 summation-order noise, amplified by BN over the 4 values of a 1×1 map, would be
    # as large as a small real difference. A layout bug gives an O(1) error; float64 noise stays < 1e-6.
    torch.manual_seed(0)
    net, _ = build_recorded(backbone, norm, image_size=size)
    net = net.double()
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, size, size, dtype=torch.float64, requires_grad=True)
    x_cl = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    out, out_cl = net(x), net_cl(x_cl)
    out.square().sum().backward(), out_cl.square().sum().backward()
    for ours, reference in ((out_cl, out), (x_cl.grad, x.grad)):
        assert (ours - reference).norm() <= 1e-6 * reference.norm()


CHANNELS_LAST_SIZE = {"small_cnn": 16, "vgg11": 16, "resnet18": 16, "resnet50": 8, "densenet121": 8}


# Quick tier: one norm per backbone (ResNet-50's Bottleneck uses the same operations as ResNet-18's blocks).
@pytest.mark.parametrize("backbone,norm", [(b, NORMS[(i + 2) % len(NORMS)])
                                           for i, b in enumerate(BACKBONE_NAMES) if b != "resnet50"])
def test_channels_last(backbone, norm):
    check_channels_last(backbone, norm, CHANNELS_LAST_SIZE[backbone])


def norm_input_maps(backbone: str, norm: str, size: int) -> list[tuple[int, int]]:
    """The (H, W) of every norm layer's input, recorded by forward hooks on the real network."""
    net, made = build_recorded(backbone, norm, image_size=size)
    maps = []
    for layer in made:
        layer.register_forward_pre_hook(lambda m, args: maps.append(tuple(args[0].shape[-2:])))
    net.eval()(torch.randn(2, 3, size, size))
    return maps


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_channels_last_every_norm(backbone, norm):
    """Where an instance norm would normalize a single value (a 1×1 map: its output would be its β
    whatever the input) the backbone is refused at build, naming the layer; the layouts are then
    compared at twice the size."""
    size = CHANNELS_LAST_SIZE[backbone]
    if norm == "in" and (1, 1) in norm_input_maps(backbone, norm, size):
        with pytest.raises(ValueError, match=r"norm 'in' at [\w.]+: its training statistic .* covers 1 value"):
            build_backbone(backbone, 10, 3, norm, norm_groups=8, image_size=size)
        size *= 2
    check_channels_last(backbone, norm, size)


def test_bad_options_fail_with_one_line():
    with pytest.raises(ValueError, match=r"backbone 'resnet18' got unknown option\(s\) \['head'\]; allowed: "
                                         r"\['zero_init_residual', 'norm_groups_policy'\]"):
        build_backbone("resnet18", 10, 3, "bn", backbone_options={"head": "mlp"})
    with pytest.raises(ValueError, match="norm_groups_policy must be one of strict, clamp, got 'round'"):
        build_backbone("resnet18", 10, 3, "gn", backbone_options={"norm_groups_policy": "round"})


def test_registry_names():
    assert list(BACKBONES) == ["small_cnn", "vgg11", "resnet18", "resnet50", "densenet121"]
