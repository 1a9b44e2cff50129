"""VGG-11's `width` option (the batch-size study's 1/8-width network): every convolution's channel
count scales, the depth and the map sizes stay (28×28 input reaches 1×1), and a width that would leave
a layer without channels is refused."""
import pytest
import torch
from torch import nn

from models.backbones import build_backbone


def test_width_scales_every_convolution_and_keeps_the_late_1x1_maps():
    net = build_backbone("vgg11", 10, 1, "bn", 4, image_size=28, backbone_options={"width": 0.125})
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 32, 64, 64, 64, 64]  # 64-128-256-256-512-… / 8
    sizes = []
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for c in convs]
    net(torch.zeros(2, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert sizes == [28, 14, 7, 7, 4, 4, 2, 2]  # the last BN sees N × 2 × 2 values; after the pool, 1×1
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("width", [0.001, 0, -1, float("nan"), True, "half"])
def test_a_width_that_leaves_no_channel_is_refused(width):
    with pytest.raises(ValueError, match=r"vgg11 width must be a finite number with round\(64 × width\) >= 1"):
        build_backbone("vgg11", 10, 1, "bn", 4, image_size=28, backbone_options={"width": width})
