"""Every backbone × every norm name: forward and backward on a batch of 4.

Each pair must give logits of shape (4, classes) and a finite gradient on every parameter, and the
norm factory must have made exactly the number of norm layers the architecture has (NORM_LAYERS,
counted from the papers' layer lists), each of which runs exactly once per forward pass.
Inputs: 32×32 RGB, and 28×28 grey for small_cnn, vgg11 and resnet18 (MNIST-type data).
The quick tier runs every norm name once, paired with the backbones in turn; the full matrix is slow.
"""
import pytest
import torch

from tests.models.backbone_probe import BACKBONE_NAMES, NORM_LAYERS, NORMS, build_recorded
from tests.models.backbone_probe import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

GREY_BACKBONES = ("small_cnn", "vgg11", "resnet18")


def check_forward_backward(backbone: str, norm: str, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    net, norm_modules = build_recorded(backbone, norm, num_classes=7, in_channels=in_channels,
                                       image_size=size)
    assert len(norm_modules) == NORM_LAYERS[backbone]
    calls = {id(m): 0 for m in norm_modules}
    for module in norm_modules:
        module.register_forward_hook(lambda m, args, out: calls.__setitem__(id(m), calls[id(m)] + 1))
    logits = net(torch.randn(4, in_channels, size, size))
    assert logits.shape == (4, 7)
    assert set(calls.values()) == {1}, "a norm layer was skipped or run twice"
    torch.nn.functional.cross_entropy(logits, torch.arange(4) % 7).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


# Quick tier: norm i with backbone i mod 5, so every norm and every backbone appears at least once.
@pytest.mark.parametrize("backbone,norm", [(BACKBONE_NAMES[i % len(BACKBONE_NAMES)], n)
                                           for i, n in enumerate(NORMS)])
def test_each_norm_in_one_backbone_rgb_32(backbone, norm):
    check_forward_backward(backbone, norm, in_channels=3, size=32)


# The small CNN (cheap) with every norm; the two larger grey backbones with one norm each.
@pytest.mark.parametrize("backbone,norm", [("small_cnn", n) for n in NORMS]
                         + [("vgg11", "gn"), ("resnet18", "gn_plus_gn_first")])
def test_grey_28(backbone, norm):
    check_forward_backward(backbone, norm, in_channels=1, size=28)


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_every_backbone_every_norm_rgb_32(backbone, norm):
    check_forward_backward(backbone, norm, in_channels=3, size=32)


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("backbone", GREY_BACKBONES)
def test_every_grey_backbone_every_norm_28(backbone, norm):
    check_forward_backward(backbone, norm, in_channels=1, size=28)
