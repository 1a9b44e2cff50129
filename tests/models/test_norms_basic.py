"""none, bn, gn, ln, in against torch's own layers; the one-line errors of the factory."""
import copy
import pickle

import pytest
import torch
from torch import nn

from models.norms import make_norm
from tests.models.layer_gradcheck import layer_gradcheck


def _randomize_affine(*layers):
    """The same random γ, β in every layer."""
    for layer in layers:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))


@pytest.mark.parametrize("name, reference", [
    ("gn", lambda c: nn.GroupNorm(4, c)),
    ("ln", lambda c: nn.GroupNorm(1, c)),
    ("in", lambda c: nn.InstanceNorm2d(c, affine=True)),
])
def test_group_based_layers_equal_torch(name, reference):
    layer, ref = make_norm(name, 8, groups=4).double(), reference(8).double()
    _randomize_affine(layer, ref)
    x = torch.randn(3, 8, 5, 4, dtype=torch.double) * 2 + 1
    for training in (True, False):
        layer.train(training), ref.train(training)
        torch.testing.assert_close(layer(x), ref(x))


def test_bn_equals_batchnorm2d_in_train_and_eval_with_running_statistics():
    layer, ref = make_norm("bn", 6).double(), nn.BatchNorm2d(6).double()
    _randomize_affine(layer, ref)
    for step in range(3):
        x = torch.randn(4, 6, 3, 3, dtype=torch.double) * (step + 1) + step
        torch.testing.assert_close(layer(x), ref(x))
    torch.testing.assert_close(layer.running_mean, ref.running_mean)
    torch.testing.assert_close(layer.running_var, ref.running_var)
    assert int(layer.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    layer.eval(), ref.eval()
    x = torch.randn(2, 6, 3, 3, dtype=torch.double)
    torch.testing.assert_close(layer(x), ref(x))


@pytest.mark.parametrize("name", ["bn", "gn", "ln", "in"])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(name, training):
    layer = make_norm(name, 4, groups=2).double().train(training)
    assert layer_gradcheck(layer, torch.randn(3, 4, 2, 2, dtype=torch.double))


@pytest.mark.parametrize("name", ["bn", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first", "gn_then_bn",
                                  "bgn", "gbgn"])
def test_batch_statistics_from_one_value_is_one_clear_line(name):
    # gn_then_bn: 2 channels per group, so its GN part works and its BN part is the one that fails
    layer = make_norm(name, 8, groups=4 if name == "gn_then_bn" else 8)
    with pytest.raises(ValueError) as info:
        layer(torch.randn(1, 8, 1, 1))
    message = str(info.value)
    assert "\n" not in message and repr(name) in message and "(1, 8, 1, 1)" in message


@pytest.mark.parametrize("name", ["gn", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first", "gn_then_bn",
                                  "gbgn"])
def test_groups_not_dividing_channels_names_layer_and_values(name):
    with pytest.raises(ValueError) as info:
        make_norm(name, 12, groups=8)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message and "groups=8" in message and "num_channels=12" in message


def test_bn_parts_are_exactly_batchnorm2d_and_keep_their_check_when_copied():
    # sync-BN converters (torch's, models/norms/sync.py) match the exact type nn.BatchNorm2d
    for layer in (make_norm("bn", 8), make_norm("gn_then_bn", 8, groups=4).bn):
        assert type(layer) is nn.BatchNorm2d
        copied = pickle.loads(pickle.dumps(copy.deepcopy(layer)))
        with pytest.raises(ValueError, match=r"\(1, 8, 1, 1\)"):
            copied(torch.randn(1, 8, 1, 1))


def test_unknown_name_lists_every_layer():
    with pytest.raises(ValueError) as info:
        make_norm("group_norm", 8)
    message = str(info.value)
    assert "'group_norm'" in message and "gn_plus_gn_first" in message and "gbgn" in message
