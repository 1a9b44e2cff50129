import pytest
import torch

from models.backbones import build_backbone


@pytest.mark.parametrize("in_channels,size", [(1, 28), (3, 28), (1, 32), (3, 32)])
@pytest.mark.parametrize("norm", ["none", "bn", "gn"])
def test_output_shape(in_channels, size, norm):
    net = build_backbone("small_cnn", num_classes=7, in_channels=in_channels, norm=norm, norm_groups=4,
                         image_size=size)
    out = net(torch.randn(3, in_channels, size, size))
    assert out.shape == (3, 7)


def test_architecture_matches_the_course_report():
    net = build_backbone("small_cnn", num_classes=10, in_channels=3, norm="bn", image_size=32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(16, (3, 3)), (32, (3, 3))]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(32 * 8 * 8, 256), (256, 10)]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2


def test_default_groups_do_not_divide_16_channels():
    with pytest.raises(ValueError, match="groups=32 does not divide num_channels=16"):
        build_backbone("small_cnn", num_classes=10, in_channels=1, norm="gn", norm_groups=32, image_size=28)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        build_backbone("resnet7", num_classes=10, in_channels=1, norm="bn")
