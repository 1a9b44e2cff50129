"""The words normlab prints about its norm layers, held to their documented templates.

Every refusal is one line naming the layer type, the value and what is allowed (models/norms/checks.py);
the extents of each layer's training statistics (`statistics` in the registry, extents.py) are the
"over what, how many values" that the start-up check (statistics.py) quotes, so each is checked here
against the count that follows from N, C, H, W by hand; and `print(model)` shows each layer's options.
"""
import dataclasses

import pytest
import torch
from torch import nn

from models.norms import make_norm
from models.norms.candidates import BatchGroupNorm, check_batch_group_inputs
from models.norms.reference_arithmetic import reference_batch_norm
from models.norms.registry import NORMS, is_grouped, norm_names, norm_spec
from models.norms.statistics import check_norm_inputs

# One template, written once: what `check_batch_values` says of a statistic of one value.
ONE_VALUE = ("norm {name!r} computes batch statistics over {over} but input shape {shape} gives 1 value per "
             "statistic; use batches of at least 2 (e.g. drop_last=True)")


@pytest.mark.parametrize("name, options, over", [
    ("bn", {}, "(N, H, W) per channel"),
    ("gn_then_bn", {"groups": 4}, "(N, H, W) per channel"),  # its BN part; 2 channels per GN group work
    ("gn_plus_parallel", {}, "(N, H, W) per channel"),
    ("gn_plus_bn_first", {"reference_arithmetic": True}, "the batch axis (reference arithmetic)"),
    ("bgn", {}, "1 example(s) × a group of C·H·W"),
    ("gbgn", {}, "1 example(s) × a group of C·H·W"),
])
def test_a_statistic_of_one_value_is_refused_in_the_documented_words(name, options, over):
    layer = make_norm(name, 8, **{"groups": 8, **options}).train()
    with pytest.raises(ValueError) as info:
        layer(torch.randn(1, 8, 1, 1))
    assert str(info.value) == ONE_VALUE.format(name=name, over=over, shape=(1, 8, 1, 1))


def test_the_reference_batch_norm_names_gn_plus_when_no_layer_is_given():
    with pytest.raises(ValueError) as info:
        reference_batch_norm(torch.randn(1, 4, 2, 2), eps=1e-5)
    assert str(info.value) == ONE_VALUE.format(name="gn_plus", over="the batch axis (reference arithmetic)",
                                               shape=(1, 4, 2, 2))


@pytest.mark.parametrize("name, options", [
    ("gn", {}), ("gn", {"reference_arithmetic": True}), ("gn_plus_parallel", {}), ("gn_plus_gn_first", {}),
    ("gn_plus_bn_first", {}), ("gn_then_bn", {}), ("gbgn", {}),
    ("bn", {"noise_std": 1.0, "noise_granularity": "group"}),
])
@pytest.mark.parametrize("groups", [8, 0])
def test_groups_not_dividing_channels_lists_the_divisors(name, options, groups):
    with pytest.raises(ValueError) as info:
        make_norm(name, 12, groups=groups, **options)
    assert str(info.value) == (f"norm {name!r}: groups={groups} does not divide num_channels=12; "
                               "allowed group counts for 12 channels: [1, 2, 3, 4, 6, 12]")


def test_unknown_option_lists_the_allowed_ones_in_order():
    with pytest.raises(ValueError) as info:
        make_norm("bn", 8, lambda_init=2.0)
    assert str(info.value) == ("norm 'bn' got unknown option(s) ['lambda_init']; "
                               "allowed: ['eps', 'momentum', 'noise_mean', 'noise_std', 'noise_granularity']")


def test_an_entry_without_several_facts_names_them_all(monkeypatch):
    monkeypatch.setitem(NORMS, "bn", dataclasses.replace(NORMS["bn"], builder=None, grouped=None))
    with pytest.raises(ValueError) as info:
        norm_spec("bn")
    assert str(info.value) == "norm 'bn' is registered without builder, grouped (models/norms/registry.py)"


@pytest.mark.parametrize("name", norm_names())
def test_is_grouped_is_whether_the_group_count_changes_the_output(name):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 3, 3)
    two, four = (make_norm(name, 8, groups=g).train()(x) for g in (2, 4))
    assert is_grouped(name) == (not torch.allclose(two, four))


# Input (N, C, H, W) = (4, 6, 3, 5): H·W = 15 positions; each count below is by hand from these.
SHAPE = (4, 6, 3, 5)
GN_PART = ("GN part: per sample over 2 channel(s) × H×W", 2 * 15)  # 3 groups of 2 channels
BN_PART = ("BN part: per channel over N×H×W", 4 * 15)


@pytest.mark.parametrize("name, options, extents", [
    ("none", {}, []),
    ("bn", {}, [("per channel over N×H×W", 4 * 15)]),
    ("gn", {}, [("per sample over 2 channel(s) × H×W", 2 * 15)]),
    ("gn", {"reference_arithmetic": True}, [("per sample over 2 channel(s) × H×W", 2 * 15)]),
    ("ln", {}, [("per sample over 6 channel(s) × H×W", 6 * 15)]),
    ("in", {}, [("per sample over 1 channel(s) × H×W", 15)]),
    ("gn_plus_parallel", {}, [GN_PART, BN_PART]),
    ("gn_plus_gn_first", {}, [GN_PART, BN_PART]),
    ("gn_plus_bn_first", {}, [GN_PART, BN_PART]),
    ("gn_plus_gn_first", {"reference_arithmetic": True},
     [GN_PART, ("BN part: per (C, H, W) position over the batch", 4)]),
    ("gn_then_bn", {}, [GN_PART, BN_PART]),
    ("bgn", {}, [("N example(s) × a group of C·H·W/3", 4 * 6 * 15 // 3)]),
    ("gbgn", {"examples_per_group": 2}, [("2 example(s) × a group of C·H·W/3", 2 * 6 * 15 // 3)]),
])
def test_training_statistics_extents_are_counted_from_the_shape(name, options, extents):
    layer = make_norm(name, 6, groups=3, **options)
    assert NORMS[name].statistics(layer, SHAPE) == extents


def _refusal(name, path, over, size, batch=""):
    return (f"norm {name!r} at {path}: its training statistic {over} covers 1 value of its {size} "
            f"input{batch}, so the layer would output its β whatever the input; use larger images, "
            "fewer groups, a larger batch or another norm")


@pytest.mark.parametrize("name, options, over", [
    ("in", {}, "per sample over 1 channel(s) × H×W"),
    ("in", {"noise_std": 1.0}, "per sample over 1 channel(s) × H×W"),  # the noise wrapper's layer is checked
    ("gn", {"groups": 8, "reference_arithmetic": True}, "per sample over 1 channel(s) × H×W"),
    ("gn_plus_gn_first", {"groups": 8}, "GN part: per sample over 1 channel(s) × H×W"),
    ("gbgn", {"groups": 8, "examples_per_group": 1}, "1 example(s) × a group of C·H·W/8"),
])
def test_a_one_value_statistic_with_the_batch_unknown_names_layer_and_input(name, options, over):
    net = nn.Sequential(nn.Identity(), make_norm(name, 8, **options))
    with pytest.raises(ValueError) as info:
        check_norm_inputs(net, name, {"1": (None, 8, 1, 1)})
    assert str(info.value) == _refusal(name, "1", over, "8×1×1")


@pytest.mark.parametrize("batch", ["data.batch_size=1", ""])
@pytest.mark.parametrize("name, options, over", [
    ("bn", {}, "per channel over N×H×W"),
    ("gn_then_bn", {"groups": 4}, "BN part: per channel over N×H×W"),
    ("gn_plus_parallel", {"groups": 4, "reference_arithmetic": True},
     "BN part: per (C, H, W) position over the batch"),
])
def test_a_one_value_statistic_with_the_batch_known_quotes_where_it_comes_from(name, options, over, batch):
    net = nn.Sequential(make_norm(name, 8, **options))
    shapes = {"0": (1, 8, 1, 1)} if "reference" not in over else {"0": (1, 8, 2, 2)}
    size = "×".join(map(str, shapes["0"]))
    with pytest.raises(ValueError) as info:
        check_norm_inputs(net, name, shapes, *([batch] if batch else []))
    assert str(info.value) == _refusal(name, "0", over, size, f" ({batch})" if batch else "")  # nothing to quote


def test_bgn_group_counts_offered_stop_at_128():
    # C·H·W of 3·43·2 = 258 and 3·43·4 = 516: their common divisors are those of 258 = 2·3·43 (129 is one).
    layers = {"a": BatchGroupNorm(3, 5), "b": BatchGroupNorm(3, 5)}
    shapes = {"a": (None, 3, 43, 2), "b": (None, 3, 43, 4)}
    with pytest.raises(ValueError) as info:
        check_batch_group_inputs("bgn", layers, shapes, "")
    assert str(info.value).endswith("allowed group counts for this network: [1, 2, 3, 6, 43, 86]")


def test_bgn_over_the_whole_batch_takes_any_batch_size():
    layers = {"a": BatchGroupNorm(4, 2)}
    check_batch_group_inputs("bgn", layers, {"a": (3, 4, 2, 2)}, "data.batch_size=3")  # 3 images: no refusal
    assert make_norm("bgn", 4, groups=2)(torch.randn(3, 4, 2, 2)).shape == (3, 4, 2, 2)


def test_gn_plus_prints_its_options_like_the_reference_group_norm():
    default = make_norm("gn_plus_gn_first", 8, groups=4, eps=1e-3)
    reference = make_norm("gn_plus_gn_first", 8, groups=4, eps=1e-3, reference_arithmetic=True)
    assert default.extra_repr() == "8, groups=4, eps=0.001"
    assert reference.extra_repr() == "8, groups=4, eps=0.001, reference_arithmetic=True"
    reference_gn = make_norm("gn", 8, groups=4, eps=1e-3, reference_arithmetic=True)
    assert reference.extra_repr() == reference_gn.extra_repr()


def test_none_prints_and_keeps_its_channel_count():
    layer = make_norm("none", 8)
    assert layer.num_channels == 8 and repr(layer) == "NoNorm(8)"


def test_the_gn_plus_bn_part_is_torchs_batchnorm_with_the_layers_options():
    layer = make_norm("gn_plus_bn_first", 8, groups=4, eps=1e-3, momentum=0.3)
    assert repr(layer.bn) == repr(nn.BatchNorm2d(8, eps=1e-3, momentum=0.3, affine=False))
