"""Every option reaches the arithmetic, every default is the documented one, and the edges of the checks.

Each layer is compared with torch's own kernels (F.group_norm, F.batch_norm, nn.BatchNorm2d) or a hand
formula at a non-default ε, on an input of small variance, where ε = 0.1 visibly changes the output;
the layer classes built directly (BatchGroupNorm, GNThenBN, ReferenceGroupNorm, GNPlus*, OutputNoise)
keep the factory's defaults (ε = 1e-5, momentum 0.1, 32 groups, element noise) and check their own
options in the same one-line words as `make_norm`. The checks refuse exactly what they say: one group
is a valid group count, two values per statistic a valid batch, one channel a valid layer.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.norms import BatchGroupNorm, GNPlusParallel, GNThenBN, OutputNoise, make_norm
from models.norms.reference_arithmetic import ReferenceGroupNorm
from models.norms.sync import convert_to_global_batchnorm

EPS = 0.1


def _small_variance_input(shape=(4, 4, 3, 3)):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=gen, dtype=torch.double) * 0.3 + 0.5


def _batch_norm(x, eps):
    return F.batch_norm(x, None, None, training=True, eps=eps)


def _reference_group_norm(x, groups, eps):
    """The GN paper's code: (x − μ)/(unbiased std + ε) per sample and group."""
    rows = x.reshape(x.shape[0], groups, -1)
    return ((rows - rows.mean(-1, keepdim=True)) / (rows.std(-1, keepdim=True) + eps)).view_as(x)


@pytest.mark.parametrize("name, options, reference", [
    ("gn", {}, lambda x, eps: F.group_norm(x, 2, eps=eps)),
    ("gn", {"reference_arithmetic": True}, lambda x, eps: _reference_group_norm(x, 2, eps)),
    ("ln", {}, lambda x, eps: F.group_norm(x, 1, eps=eps)),
    ("in", {}, lambda x, eps: F.group_norm(x, 4, eps=eps)),
    ("gn_then_bn", {}, lambda x, eps: _batch_norm(F.group_norm(x, 2, eps=eps), eps)),
    ("bgn", {"groups": 4}, _batch_norm),  # one group per channel over the whole batch: BN
    # one example per group: GN
    ("gbgn", {"examples_per_group": 1}, lambda x, eps: F.group_norm(x, 2, eps=eps)),
])
def test_eps_reaches_the_arithmetic(name, options, reference):
    layer = make_norm(name, 4, **{"groups": 2, **options}, eps=EPS).double().train()
    x = _small_variance_input()
    torch.testing.assert_close(layer(x), reference(x, EPS))
    assert not torch.allclose(reference(x, EPS), reference(x, 1e-5))  # ε = 0.1 matters on this input


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_a_converted_bn_part_keeps_the_layers_eps(name):
    """The BN part replaced (as the sync-BN plugin does) runs the plain composition with the layer's ε."""
    fast = make_norm(name, 4, groups=2, eps=EPS, lambda_init=0.3).double()
    converted = convert_to_global_batchnorm(make_norm(name, 4, groups=2, eps=EPS, lambda_init=0.3)).double()
    assert type(converted.bn) is not nn.BatchNorm2d  # so the composition path runs
    x = _small_variance_input()
    torch.testing.assert_close(converted(x), fast(x))
    torch.testing.assert_close(converted.bn.running_var, fast.bn.running_var)


def test_batch_group_norm_built_directly_defaults_to_batchnorms_eps_momentum_and_counter():
    layer, reference = BatchGroupNorm(4, 4).double(), nn.BatchNorm2d(4).double()  # G = C: BN's statistics
    for step in range(2):
        x = _small_variance_input() * (step + 1)
        torch.testing.assert_close(layer(x), reference(x))
    for key, value in reference.state_dict().items():  # running mean, unbiased variance, an integer count
        if key in ("weight", "bias"):
            continue
        assert layer.state_dict()[key].dtype == value.dtype, key
        torch.testing.assert_close(layer.state_dict()[key], value, msg=key)
    with pytest.raises(ValueError, match=r"^norm 'bgn' computes batch statistics"):
        layer(torch.randn(1, 4, 1, 1, dtype=torch.double))


@pytest.mark.parametrize("option, value, allowed", [
    ("examples_per_group", 0, "an integer >= 1 or null"),
    ("eps", 0.0, "a finite number > 0"),
    ("momentum", 2.0, "[0, 1]"),
])
def test_batch_group_norm_built_directly_checks_its_options(option, value, allowed):
    with pytest.raises(ValueError) as info:
        BatchGroupNorm(4, 2, **{option: value}, name="gbgn")
    message = str(info.value)
    assert message.startswith(f"norm 'gbgn': {option} must be ") and allowed in message
    assert message.endswith(f", got {value!r}")


def test_gn_then_bn_built_directly_defaults_to_torchs_eps_and_momentum():
    layer = GNThenBN(8, 4).double()
    gn, bn = nn.GroupNorm(4, 8).double(), nn.BatchNorm2d(8).double()
    for step in range(2):
        x = _small_variance_input((4, 8, 3, 3)) + step
        torch.testing.assert_close(layer(x), bn(gn(x)))
    torch.testing.assert_close(layer.bn.running_var, bn.running_var)


def test_reference_group_norm_built_directly_defaults_to_eps_1e_5():
    x = _small_variance_input()
    torch.testing.assert_close(ReferenceGroupNorm(4, 2).double()(x), _reference_group_norm(x, 2, 1e-5))


def test_32_groups_by_default():
    x = torch.randn(2, 64, 3, 3, dtype=torch.double)
    torch.testing.assert_close(make_norm("gn", 64).double()(x), F.group_norm(x, 32))
    made, built = make_norm("gn_plus_parallel", 64, groups=32).double(), GNPlusParallel(64).double()
    assert built.groups == 32
    torch.testing.assert_close(built(x), made(x))


def test_output_noise_built_directly_draws_per_element_by_default():
    layer = OutputNoise(nn.Identity(), "none", 8, 2, 0.0, 1.0)
    out = layer(torch.zeros(3, 8, 2, 2))
    assert out.reshape(3, 2, -1).std(-1).min() > 0  # not one draw shared by each (sample, group)


@pytest.mark.parametrize("key, options", [
    ("noise_mean", {"mean": float("nan")}),
    ("noise_std", {"std": -1.0}),
    ("noise_granularity", {"granularity": "pixel"}),
])
def test_output_noise_built_directly_checks_its_options(key, options):
    arguments = {"mean": 0.0, "std": 1.0, "granularity": "element", **options}
    with pytest.raises(ValueError, match=rf"^norm 'gn': {key} must be "):
        OutputNoise(nn.Identity(), "gn", 8, 2, **arguments)


def test_noise_std_alone_draws_zero_mean_noise():
    plain, noisy = make_norm("bn", 8), make_norm("bn", 8, noise_std=2.0)
    x = torch.randn(4, 8, 3, 3)
    torch.manual_seed(0)
    difference = noisy(x) - plain(x)
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 2.0
    torch.testing.assert_close(difference, expected, atol=1e-5, rtol=1e-5)


def test_noise_mean_alone_is_a_constant_shift():
    plain, noisy = make_norm("bn", 8), make_norm("bn", 8, noise_mean=0.5)
    x = torch.randn(4, 8, 3, 3)
    torch.testing.assert_close(noisy(x) - plain(x), torch.full(x.shape, 0.5))


@pytest.mark.parametrize("name", ["gn", "gn_plus_parallel", "gn_then_bn", "gbgn"])
def test_one_group_is_a_valid_group_count(name):
    # With one group the GN part normalizes over C·H·W per sample (the LayerNorm-like case).
    options = {"gn_plus_parallel": {"lambda_init": 60.0},  # s ≈ 1: its GN part alone
               "gbgn": {"examples_per_group": 1}}.get(name, {})  # one example per group: GN
    layer = make_norm(name, 8, groups=1, **options)
    x = torch.randn(4, 8, 3, 3, dtype=torch.double)
    expected = F.group_norm(x, 1)
    if name == "gn_then_bn":
        expected = _batch_norm(expected, 1e-5)
    torch.testing.assert_close(layer.double()(x), expected)


@pytest.mark.parametrize("name", ["bn", "gn_plus_parallel", "gn_then_bn", "bgn"])
def test_two_values_per_statistic_are_enough(name):
    """A batch of two 1×1 maps: BN's statistic per channel covers two values (the smallest allowed)."""
    options = {"lambda_init": -60.0} if name.startswith("gn_plus") else {}  # GNPlus: its BN part alone
    layer = make_norm(name, 8, groups=4 if name == "gn_then_bn" else 8, **options).double()
    x = torch.randn(2, 8, 1, 1, dtype=torch.double)
    expected = _batch_norm(F.group_norm(x, 4) if name == "gn_then_bn" else x, 1e-5)
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("name", ["bn", "gn_plus_parallel"])
def test_a_single_channel_layer_normalizes_a_batch_of_two(name):
    layer = make_norm(name, 1, groups=1, **({"lambda_init": -60.0} if name != "bn" else {})).double()
    x = torch.tensor([[[[1.0]]], [[[3.0]]]], dtype=torch.double)  # mean 2, biased variance 1
    expected = torch.tensor([-1.0, 1.0], dtype=torch.double).view(2, 1, 1, 1) / (1 + 1e-5) ** 0.5
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_reference_arithmetic_keeps_no_running_statistics(name):
    """The paper's code's BN part keeps no running statistics: nothing to save, nothing for sync-BN to
    convert."""
    layer = make_norm(name, 8, groups=2, reference_arithmetic=True)
    assert dict(layer.named_buffers()) == {}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
