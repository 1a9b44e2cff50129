"""Norm options, batch statistics and the checks against a backbone's shapes.

Each refusal is checked against what would have happened without it, computed independently: the
network whose instance norm sees a 1×1 map really outputs the same logits for any input, the refused
`gbgn` batch really fails in the forward pass, and the registry's "uses batch statistics" is what a
layer does (a sample's output depends on the other samples of the batch in training).
"""
import math

import pytest
import torch

from models.backbones import build_backbone
from models.classifier import ImageClassifier
from models.norms import make_norm, norm_names, uses_batch_statistics
from tests.models.backbone_probe import build_recorded, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,option,value,allowed", [
    ("bn", "eps", -1, "a finite number > 0"),
    ("gn_plus_parallel", "eps", 0, "a finite number > 0"),
    ("gn", "eps", float("nan"), "a finite number > 0"),
    ("bn", "momentum", 2, "[0, 1]"),
    ("gn_then_bn", "momentum", -0.1, "[0, 1]"),
    ("gn_plus_gn_first", "lambda_init", float("inf"), "a finite number"),
    ("gbgn", "examples_per_group", 0, "an integer >= 1 or null"),
    ("gn", "reference_arithmetic", "yes", "true or false"),
    ("in", "noise_std", -1.0, "a finite number >= 0"),
])
def test_option_out_of_range_is_one_line(name, option, value, allowed):
    with pytest.raises(ValueError) as info:
        make_norm(name, 8, groups=2, **{option: value})
    message = str(info.value)
    assert message.startswith(f"norm {name!r}: {option} must be ") and message.endswith(f", got {value!r}")
    assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize("option,value", [("eps", 1e-12), ("momentum", 0.0), ("momentum", 1.0), ("momentum", None)])
def test_options_at_the_ends_of_their_range_build(option, value):
    layer = make_norm("bn", 8, **{option: value})
    assert getattr(layer, option) == value


def depends_on_other_samples(name: str, **options) -> bool:
    """True when, in training, sample 0's output changes with sample 1's input."""
    torch.manual_seed(0)
    layer = make_norm(name, 8, groups=2, **options).train()
    x = torch.randn(2, 8, 4, 4)
    changed = x.clone()
    changed[1] = 3 * changed[1] + 1
    return not torch.allclose(layer(x)[0], layer(changed)[0])


@pytest.mark.parametrize("name", norm_names())
def test_batch_statistics_flag_is_what_the_layer_does(name):
    assert uses_batch_statistics(name) == depends_on_other_samples(name)


def test_gbgn_with_one_example_per_group_uses_no_batch_statistics():
    assert not uses_batch_statistics("gbgn", {"examples_per_group": 1})
    assert not depends_on_other_samples("gbgn", examples_per_group=1)


def test_instance_norm_on_a_one_by_one_map_is_refused_naming_the_layer():
    # Without the check (the backbone built directly) the logits do not depend on the input: in float64
    # they agree to rounding (x − μ of one value is 0 up to rounding, amplified by 1/√ε), where a
    # network that sees its input gives logits that differ by far more.
    torch.manual_seed(0)
    unchecked, _ = build_recorded("resnet18", "in", image_size=8)
    logits = [unchecked.double()(torch.randn(2, 3, 8, 8, dtype=torch.float64)) for _ in range(2)]
    assert (logits[0] - logits[1]).abs().max() < 1e-9
    seeing, _ = build_recorded("resnet18", "gn", image_size=8)
    logits = [seeing.double()(torch.randn(2, 3, 8, 8, dtype=torch.float64)) for _ in range(2)]
    assert (logits[0] - logits[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"^norm 'in' at stages\.3\.0\.norm1: its training statistic per sample "
                                         r"over 1 channel\(s\) × H×W covers 1 value of its 512×1×1 input"):
        build_backbone("resnet18", 10, 3, "in", image_size=8)
    build_backbone("resnet18", 10, 3, "in", image_size=16)  # 2×2 maps: four values per statistic


def test_bgn_groups_are_checked_against_every_layers_shape():
    # small_cnn at 28×28: its norm layers see 16×28×28 and 32×14×14 values per sample.
    common = math.gcd(16 * 28 * 28, 32 * 14 * 14)
    with pytest.raises(ValueError) as info:
        build_backbone("small_cnn", 10, 1, "bgn", norm_groups=3, image_size=28)
    allowed = [d for d in range(1, 129) if common % d == 0]
    assert str(info.value) == ("norm 'bgn' at features.1: norm_groups=3 does not divide its input's C·H·W = "
                               f"16·28·28 = 12544; allowed group counts for this network: {allowed}")
    net = build_backbone("small_cnn", 10, 1, "bgn", norm_groups=7, image_size=28)  # 7 divides both, not 16
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_gbgn_batch_is_checked_before_the_forward_pass():
    model = ImageClassifier("small_cnn", "gbgn", norm_groups=4, norm_options={"examples_per_group": 4},
                            in_channels=1, image_size=28)
    with pytest.raises(ValueError, match=r"^norm 'gbgn': data.batch_size=6 gives 6 images per device, which do not "
                                         r"split into groups of examples_per_group=4; use a multiple of 4 per device$"):
        model.check_batch_size(6, "data.batch_size=6")
    with pytest.raises(ValueError, match="does not split into groups of 4 examples"):
        model(torch.randn(6, 1, 28, 28))  # what the forward pass would have said, mid-training
    model.check_batch_size(8, "data.batch_size=8")


def test_batch_of_one_is_refused_for_batch_statistics_norms_only():
    refused = ImageClassifier("small_cnn", "bgn", norm_groups=4, in_channels=1, image_size=28)
    with pytest.raises(ValueError, match=r"model.norm='bgn' normalizes with batch statistics in training; .* "
                                         r"trains on one image: none, gn, ln, in$"):
        refused.check_batch_size(1, "data.batch_size=1")
    ImageClassifier("small_cnn", "gn", norm_groups=4, in_channels=1, image_size=28).check_batch_size(1, "x")


@pytest.mark.parametrize("option,value,allowed", [
    ("momentum", 1.0, "a number in [0, 1)"),
    ("betas", (0.9, 1.5), "two numbers in [0, 1)"),
    ("weight_decay", -1e-4, "a finite number >= 0"),
    ("lambda_lr_scale", float("nan"), "a finite number >= 0"),
    ("gamma", 0.0, "a finite number > 0"),
    ("step_size", 0, "an integer >= 1"),
    ("milestones", [10, -1], "epochs: integers >= 0, or null"),
    ("warmup_epochs", -1.0, "a finite number >= 0"),
    ("norm_groups", 0, "an integer >= 1"),
])
def test_model_option_out_of_range_is_one_line(option, value, allowed):
    with pytest.raises(ValueError) as info:
        ImageClassifier(**{option: value})
    assert str(info.value) == f"model.{option} must be {allowed}, got {value!r}"
