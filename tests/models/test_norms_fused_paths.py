"""The fused arithmetic (models/norms/moments.py) and the corners of the layers built on it.

- `sample_channel_moments` equals torch.var_mean, exactly where the one-read formula E[x²] − E[x]² would
  lose the variance (|mean| ≫ std); and it takes the path its docstring states: one read without a
  graph on CPU (a dead all-zero channel included), the exact two-pass variance with a graph or when a
  row has |mean| > 10·std. A path is told by whether it creates an x-sized temporary (x − mean).
- `_position_sums` reads an expanded upstream gradient without materializing it.
- The backward with `create_graph=True` (`_recomputed_grads`) gives the fused backward's gradients.
- Statistics are computed in the input's precision (at least float32), whatever the parameters' dtype.
- bf16 activations get bf16 gradients and running statistics close to float64's.
- BatchGroupNorm's example groups, GNPlus's eval on a single 1×1 sample, OutputNoise's group draws.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from models.norms import BatchGroupNorm, make_norm
from models.norms.moments import _position_sums, sample_channel_moments
from tests.models.layer_gradcheck import layer_gradcheck

FUSED = ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first", "bgn", "gbgn"]


class _FullSizeTemporaries(TorchDispatchMode):
    """Counts the ops that write a new tensor of at least `numel` elements (views of x excluded)."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.count = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in args if isinstance(a, torch.Tensor)]
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() >= self.numel and not any(
                    t.untyped_storage().data_ptr() == a.untyped_storage().data_ptr() for a in inputs):
                self.count += 1
        return out


def full_size_temporaries(fn, x) -> int:
    with _FullSizeTemporaries(x.numel()) as mode:
        fn()
    return mode.count


def _var_mean(x):
    var, mean = torch.var_mean(x.double(), dim=tuple(range(2, x.dim())), unbiased=False)
    return mean, var


def test_moments_far_from_zero_are_exact_in_float64():
    x = torch.randn(3, 4, 5, 6, dtype=torch.double) * 0.01 + 100  # |mean| = 10⁴·std: the two-pass variance
    mean, var = sample_channel_moments(x)
    expected_mean, expected_var = _var_mean(x)
    torch.testing.assert_close(mean, expected_mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(var, expected_var, rtol=1e-8, atol=0)


def test_moments_far_from_zero_keep_the_variance_in_float32():
    # mean 30, std 0.03: E[x²] − E[x]² in float32 would be off by several percent of the variance.
    x = torch.randn(4, 4, 8, 8) * 0.03 + 30
    _, var = sample_channel_moments(x)
    _, expected = _var_mean(x)
    assert ((var.double() - expected).abs() / expected).max() < 1e-3


def _rows(*means_over_stds):
    """(1, C, 1, 2) with row c = mean ± 1 (std 1, biased): mean/std as given."""
    m = torch.tensor(means_over_stds, dtype=torch.double)
    return torch.stack([m - 1, m + 1], dim=-1).view(1, len(means_over_stds), 1, 2)


@pytest.mark.parametrize("grad_mode", [False, True])
def test_without_a_graph_on_cpu_the_moments_take_one_read(grad_mode):
    x = torch.randn(2, 4, 4, 4, dtype=torch.double)
    x[:, 3] = 0  # a dead channel: mean 0, variance 0
    with torch.set_grad_enabled(grad_mode):  # grad mode on, but x needs no gradient: still no graph
        assert full_size_temporaries(lambda: sample_channel_moments(x), x) == 0
    torch.testing.assert_close(sample_channel_moments(x), _var_mean(x))


def test_with_a_graph_the_moments_take_the_exact_two_pass_variance():
    x = torch.randn(2, 4, 4, 4, dtype=torch.double, requires_grad=True)
    assert full_size_temporaries(lambda: sample_channel_moments(x), x) >= 1
    torch.testing.assert_close(sample_channel_moments(x), _var_mean(x.detach()))


@pytest.mark.parametrize("mean_over_std, exact_pass", [(9.95, False), (10.025, True)])
def test_a_row_beyond_ten_stds_switches_to_the_exact_variance(mean_over_std, exact_pass):
    x = _rows(1.0, mean_over_std)
    assert (full_size_temporaries(lambda: sample_channel_moments(x), x) >= 1) == exact_pass
    torch.testing.assert_close(sample_channel_moments(x), _var_mean(x))


@pytest.mark.parametrize("shape, expand", [
    ((3, 8, 2, 2), lambda g: g[:, :, :1, :1]),  # expanded over H, W (y.mean((2, 3))), axes of 2
    ((3, 8, 2, 5), lambda g: g[:, :, :1, :1]),
    ((3, 8, 4, 2), lambda g: g[:, :, :, :1]),  # expanded over W only
    ((3, 8, 2, 2), lambda g: g[:1, :1, :1, :1]),  # y.sum(): one value everywhere
])
def test_position_sums_read_an_expanded_gradient_without_copying_it(shape, expand):
    x = torch.randn(shape, dtype=torch.double)
    grad = expand(torch.randn(shape, dtype=torch.double)).expand(shape)
    mean = x.mean((2, 3))
    expected = ((grad * x).sum((2, 3)), grad.sum((2, 3)))
    x_rows = x.numel() // shape[-1]  # a copy of x summed over W is x-sized / W: allowed
    with _FullSizeTemporaries(x_rows + 1) as mode:
        got = _position_sums(grad, x, mean)
    assert mode.count == 0
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", FUSED)
def test_gradients_with_create_graph_equal_the_fused_backward(name, training):
    layer = make_norm(name, 8, groups=4, **({"examples_per_group": 2} if name == "gbgn" else {})).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0), layer.bias.uniform_(-1.0, 1.0)
    layer(torch.randn(4, 8, 3, 3, dtype=torch.double))  # running statistics away from (0, 1)
    layer.train(training)
    x = (torch.randn(4, 8, 3, 3, dtype=torch.double) * 2 + 1).requires_grad_()
    inputs = [x, *layer.parameters()]
    grad = torch.randn(4, 8, 3, 3, dtype=torch.double)
    fused = torch.autograd.grad(layer(x), inputs, grad)
    recomputed = torch.autograd.grad(layer(x), inputs, grad, create_graph=True)
    for a, b in zip(recomputed, fused):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", FUSED)
def test_parameter_gradients_of_a_first_layer_whose_input_needs_none(name):
    layer = make_norm(name, 8, groups=4).double()
    x = torch.randn(4, 8, 3, 3, dtype=torch.double)
    grad = torch.randn(4, 8, 3, 3, dtype=torch.double)
    x_too = x.clone().requires_grad_()
    expected = torch.autograd.grad(layer(x_too), [x_too, *layer.parameters()], grad)[1:]
    for a, b in zip(torch.autograd.grad(layer(x), list(layer.parameters()), grad), expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_bn_first", "gbgn"])
def test_gradcheck_one_sample_of_one_channel(name):
    """The fused backward's count of positions per (sample, channel) on the smallest input there is."""
    layer = make_norm(name, 1, groups=1, **({"examples_per_group": 1} if name == "gbgn" else {})).double()
    assert layer_gradcheck(layer, torch.randn(1, 1, 2, 3, dtype=torch.double))


def _with_random_affine(layer):
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in (layer.weight, layer.bias):
            p.copy_(torch.randn(p.shape, generator=gen))
    return layer


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", FUSED)
def test_statistics_follow_the_inputs_precision_not_the_parameters(name, training):
    layer32 = _with_random_affine(make_norm(name, 8, groups=4, lambda_init=0.3) if name.startswith("gn_plus")
                                  else make_norm(name, 8, groups=4))
    layer32(torch.randn(8, 8, 6, 6))  # running statistics away from (0, 1)
    layer32.train(training)
    layer64 = copy.deepcopy(layer32).double()
    x = torch.randn(8, 8, 6, 6) * 2 + 1
    # float32 input: the float64 copy computes in float32 like the float32 layer, bit for bit
    assert torch.equal(copy.deepcopy(layer64)(x), copy.deepcopy(layer32)(x))
    # float64 input: the float32 layer computes in float64 like its float64 copy (λ's σ included)
    torch.testing.assert_close(copy.deepcopy(layer32)(x.double()), copy.deepcopy(layer64)(x.double()),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", FUSED)
def test_bf16_activations_get_bf16_gradients_close_to_float64(name):
    layer = make_norm(name, 8, groups=4)
    x64 = (torch.randn(4, 8, 4, 4, dtype=torch.double) * 2 + 1).bfloat16().double()
    grads = {"dense": torch.randn(4, 8, 4, 4).bfloat16(),
             "expanded over W": torch.randn(4, 8, 4, 1).bfloat16().expand(4, 8, 4, 4)}
    for kind, grad in grads.items():
        x = x64.bfloat16().requires_grad_()
        (got,) = torch.autograd.grad(layer(x), x, grad)
        x_ref = x64.clone().requires_grad_()
        (expected,) = torch.autograd.grad(copy.deepcopy(layer).double()(x_ref), x_ref, grad.double())
        assert got.dtype == torch.bfloat16, kind
        torch.testing.assert_close(got.double(), expected, atol=0.05, rtol=0.02, msg=kind)


@pytest.mark.parametrize("name", ["gn_plus_parallel", "bgn"])
def test_a_bf16_layer_keeps_running_statistics_close_to_batchnorms(name):
    layer = make_norm(name, 8, groups=8 if name == "bgn" else 4).bfloat16()
    reference = nn.BatchNorm2d(8, affine=False).double()  # what both normalize: x per channel over N, H, W
    for _ in range(3):
        x = (torch.randn(4, 8, 4, 4) * 2 + 1).bfloat16()
        layer(x), reference(x.double())
    state = layer.state_dict()
    prefix = "bn." if name != "bgn" else ""
    for key in ("running_mean", "running_var"):
        torch.testing.assert_close(state[prefix + key].double(), getattr(reference, key), atol=0.02,
                                   rtol=0.02)


def test_bgn_across_channels_with_example_groups_keeps_per_group_running_statistics():
    # Groups of the merged C·H·W axis (G = 4 does not divide C = 3) and 2 groups of 2 examples.
    layer = BatchGroupNorm(3, 4, examples_per_group=2, name="gbgn").double()
    x = np.random.default_rng(5).normal(size=(4, 3, 2, 2))
    y = layer(torch.from_numpy(x)).detach().numpy()
    blocks = x.reshape(2, 2, 4, 3).transpose(0, 2, 1, 3).reshape(2, 4, 6)  # (example group, G, values)
    mean, var = blocks.mean(-1, keepdims=True), blocks.var(-1, keepdims=True)
    normalized = (blocks - mean) / np.sqrt(var + 1e-5)
    expected = normalized.reshape(2, 4, 2, 3).transpose(0, 2, 1, 3).reshape(x.shape)
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * mean[..., 0].mean(0), rtol=1e-10, atol=1e-15)
    unbiased = var[..., 0] * 6 / 5  # 6 values per statistic
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * unbiased.mean(0), rtol=1e-10)


def test_bgn_scales_by_gamma_and_shifts_by_beta():
    layer = _with_random_affine(make_norm("bgn", 4, groups=2)).double()
    x = np.random.default_rng(6).normal(size=(3, 4, 2, 2))
    flat = x.reshape(3, 2, -1)
    mean, var = flat.mean((0, 2), keepdims=True), flat.var((0, 2), keepdims=True)
    normalized = ((flat - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)
    gamma, beta = (p.detach().numpy()[:, None, None] for p in (layer.weight, layer.bias))
    y = layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(y, gamma * normalized + beta, rtol=1e-10)


def test_gbgn_with_one_example_per_group_records_no_running_statistics():
    """One example per group is GN: nothing across the batch to average into running estimates."""
    layer = make_norm("gbgn", 8, groups=4, examples_per_group=1)
    reference = nn.BatchNorm2d(4)  # its buffers as built
    for _ in range(2):
        layer(torch.randn(4, 8, 3, 3) * 3 + 1)
    torch.testing.assert_close(layer.running_mean, reference.running_mean)
    torch.testing.assert_close(layer.running_var, reference.running_var)
    assert int(layer.num_batches_tracked) == 0


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_gn_plus_in_eval_normalizes_a_single_one_by_one_sample(name):
    """Eval uses the BN part's running estimates, as nn.BatchNorm2d does: a batch of one 1×1 map is fine,
    and its output is what the same sample gets inside a larger eval batch."""
    layer = make_norm(name, 8, groups=2)
    layer(torch.randn(6, 8, 3, 3) * 2 + 1)
    layer.eval()
    x = torch.randn(5, 8, 1, 1)
    torch.testing.assert_close(layer(x[:1]), layer(x)[:1])


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_gn_plus_with_a_bn_part_without_running_statistics_uses_batch_statistics(name):
    layer = make_norm(name, 8, groups=2, lambda_init=-60.0).double()  # s ≈ 0: the BN-part side of the mix
    layer.bn = nn.BatchNorm2d(8, affine=False, track_running_stats=False).double()
    x = torch.randn(4, 8, 3, 3, dtype=torch.double) * 2 + 1
    bn = lambda t: F.batch_norm(t, None, None, training=True)  # noqa: E731
    expected = {"gn_plus_parallel": bn(x), "gn_plus_gn_first": bn(F.group_norm(x, 2)),
                "gn_plus_bn_first": bn(x)}[name]
    for training in (True, False):
        layer.train(training)
        torch.testing.assert_close(layer(x), expected)


def test_group_noise_adds_the_seeded_draws_per_sample_and_group():
    layer = make_norm("none", 8, groups=2, noise_mean=0.5, noise_std=2.0, noise_granularity="group")
    torch.manual_seed(3)
    out = layer(torch.zeros(4, 8, 3, 3))
    draws = torch.randn(4, 2, 1, generator=torch.Generator().manual_seed(3)) * 2.0 + 0.5
    torch.testing.assert_close(out, draws.expand(4, 2, 36).reshape(4, 8, 3, 3))


@pytest.mark.parametrize("granularity", ["element", "group"])
def test_noise_keeps_the_outputs_dtype_and_device(granularity):
    layer = make_norm("none", 8, groups=2, noise_std=1.0, noise_granularity=granularity)
    assert layer(torch.zeros(2, 8, 2, 2, dtype=torch.bfloat16)).dtype == torch.bfloat16
    out = layer(torch.zeros(2, 8, 2, 2, device="meta"))  # the meta device stands in for an accelerator
    assert out.device.type == "meta" and out.shape == (2, 8, 2, 2)
