import pytest
import torch
from torch import nn

from models.norm_names import NORM_NAMES
from models.norms import make_norm, norm_names


def test_basic_names_registered():
    assert {"none", "bn", "gn", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"} <= set(norm_names())


def test_the_torch_free_list_of_names_is_the_registry_in_its_order():
    assert list(NORM_NAMES) == norm_names()


@pytest.mark.parametrize("name", ["none", "bn", "gn", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_shapes_preserved(name):
    x = torch.randn(4, 8, 5, 5)
    assert make_norm(name, 8, groups=4)(x).shape == x.shape


def test_bn_and_gn_are_torch_layers():
    bn, gn = make_norm("bn", 8), make_norm("gn", 8, groups=2)
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 8
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 2 and gn.num_channels == 8


def test_groups_not_dividing_channels_is_one_clear_line():
    with pytest.raises(ValueError) as info:
        make_norm("gn", 16, groups=32)
    message = str(info.value)
    assert "\n" not in message and "'gn'" in message and "groups=32" in message and "num_channels=16" in message


def test_unknown_name_lists_allowed_names():
    with pytest.raises(ValueError, match=r"unknown norm 'batchnorm'; allowed: none, bn, gn"):
        make_norm("batchnorm", 8)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"norm 'bn' got unknown option\(s\) \['lambda_init'\]"):
        make_norm("bn", 8, lambda_init=2.0)
