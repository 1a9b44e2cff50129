"""The CIFAR backbones against independent references: torchvision's networks and the known counts.

Reference networks: torchvision's resnet18, resnet50, densenet121 and VGG configuration A with BN
(independent implementations of He et al. 2016, Huang et al. 2017, Simonyan & Zisserman 2015), put
into CIFAR form the way kuangliu/pytorch-cifar (the GN paper's training script) builds them: a 3×3
stride-1 stem without max-pool (and, for DenseNet, without a stem norm). With the same weights
copied across in order, our networks must compute the same function.
Parameter counts with `bn` and 10 classes are the well-known published CIFAR values; GN has the
same counts; each GNPlus layer adds exactly one parameter (its λ); `none` drops every γ and β.
"""
import pytest
import torch
import torchvision
from torch import nn

from models.backbones import build_backbone
from tests.models.backbone_probe import GNPLUS_NORMS, NORM_LAYERS, build_recorded, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR_PARAMETERS = {"resnet18": 11_173_962, "resnet50": 23_520_842, "vgg11": 9_231_114,
                    "densenet121": 6_956_298}


def count_parameters(backbone: str, norm: str, num_classes: int = 10) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = build_backbone(backbone, num_classes=num_classes, in_channels=3, norm=norm, norm_groups=32)
    return sum(p.numel() for p in net.parameters())


def torchvision_cifar(backbone: str, num_classes: int) -> nn.Module:
    stem = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    if backbone.startswith("resnet"):
        net = getattr(torchvision.models, backbone)(num_classes=num_classes)
        net.conv1, net.maxpool = stem, nn.Identity()
        return net
    if backbone == "densenet121":
        net = torchvision.models.densenet121(num_classes=num_classes)
        features = net.features
        features.conv0 = stem
        features.norm0, features.relu0, features.pool0 = nn.Identity(), nn.Identity(), nn.Identity()
        return net
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["A"], batch_norm=True)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(512, num_classes))


@pytest.mark.parametrize("backbone,size", [("resnet18", 16), ("resnet50", 8), ("densenet121", 8),
                                           ("vgg11", 32)])
def test_same_function_as_torchvision(backbone, size):
    torch.manual_seed(0)
    ours, reference = build_backbone(backbone, 10, 3, "bn", 32), torchvision_cifar(backbone, 10)
    for module in reference.modules():  # non-trivial γ, β and running statistics, so eval mode is tested too
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5), nn.init.normal_(module.bias, std=0.1)
            nn.init.normal_(module.running_mean, std=0.1), nn.init.uniform_(module.running_var, 0.5, 1.5)
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert len(ours_state) == len(reference_state)
    for (name, ours_tensor), (ref_name, ref_tensor) in zip(ours_state.items(), reference_state.items()):
        assert ours_tensor.shape == ref_tensor.shape, (name, ref_name)
        ours_tensor.copy_(ref_tensor)
    x = torch.randn(4, 3, size, size)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))  # running statistics
    torch.testing.assert_close(ours.train()(x), reference.train()(x))  # batch statistics


@pytest.mark.parametrize("backbone", list(CIFAR_PARAMETERS))
def test_parameter_counts(backbone):
    expected = CIFAR_PARAMETERS[backbone]
    assert count_parameters(backbone, "bn") == expected
    assert count_parameters(backbone, "gn") == expected
    for norm in GNPLUS_NORMS:
        assert count_parameters(backbone, norm) == expected + NORM_LAYERS[backbone], norm
    with torch.device("meta"):
        _, bn_layers = build_recorded(backbone, "bn")
    assert count_parameters(backbone, "none") == expected - sum(2 * m.num_features for m in bn_layers)


def test_resnet50_with_100_classes():
    assert count_parameters("resnet50", "bn", num_classes=100) == 23_705_252


def test_gnplus_names_found():
    assert set(GNPLUS_NORMS) >= {"gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"}
