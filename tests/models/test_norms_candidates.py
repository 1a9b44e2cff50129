"""gn_then_bn, bgn, gbgn (GN paper A.5) against hand computations and their limiting cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.norms import make_norm
from tests.models.layer_gradcheck import layer_gradcheck

EPS = 1e-5


def _normalize(block):
    return (block - block.mean()) / np.sqrt(block.var() + EPS)


def test_gn_then_bn_is_bn_after_gn():
    layer = make_norm("gn_then_bn", 6, groups=3).double()
    gn, bn = nn.GroupNorm(3, 6).double(), nn.BatchNorm2d(6).double()
    with torch.no_grad():
        for a, b in ((layer.gn, gn), (layer.bn, bn)):
            a.weight.normal_(), a.bias.normal_()
            b.weight.copy_(a.weight), b.bias.copy_(a.bias)
    x = torch.randn(4, 6, 3, 3, dtype=torch.double)
    torch.testing.assert_close(layer(x), bn(gn(x)))
    layer.eval(), gn.eval(), bn.eval()
    torch.testing.assert_close(layer(x), bn(gn(x)))
    assert layer.weight is layer.bn.weight and layer.bias is layer.bn.bias


@pytest.mark.parametrize("channels, groups", [(3, 4), (4, 2)])  # groups across channels; of whole channels
def test_bgn_by_hand_on_merged_chw_groups(channels, groups):
    layer = make_norm("bgn", channels, groups=groups).double()
    x = np.random.default_rng(0).normal(size=(2, channels, 2, 2))
    flat = x.reshape(2, groups, -1)
    expected = np.stack([_normalize(flat[:, g, :]) for g in range(groups)], axis=1).reshape(x.shape)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10)
    # running statistics: per group, unbiased variance over the group's values in the batch, momentum 0.1
    values = flat.transpose(1, 0, 2).reshape(groups, -1)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * values.mean(1), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * values.var(1, ddof=1), rtol=1e-10)
    layer.eval()
    rm, rv = layer.running_mean.numpy()[None, :, None], layer.running_var.numpy()[None, :, None]
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(),
                               ((flat - rm) / np.sqrt(rv + EPS)).reshape(x.shape), rtol=1e-10)


def test_gbgn_by_hand_with_example_groups():
    layer = make_norm("gbgn", 4, groups=2, examples_per_group=2).double()
    x = np.random.default_rng(1).normal(size=(4, 4, 2, 2))
    expected = np.empty_like(x)
    for e in range(2):
        for g in range(2):
            rows, chans = slice(2 * e, 2 * e + 2), slice(2 * g, 2 * g + 2)
            expected[rows, chans] = _normalize(x[rows, chans])
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10)
    # running statistics: each channel group's mean and unbiased variance, averaged over example groups
    blocks = x.reshape(2, 2, 2, 2, 4).transpose(0, 2, 1, 3, 4).reshape(2, 2, -1)  # (example group, G, values)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * blocks.mean(-1).mean(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * blocks.var(-1, ddof=1).mean(0), rtol=1e-10)


def test_gbgn_limits_are_bn_and_gn():
    x = torch.randn(6, 4, 3, 3, dtype=torch.double)
    as_bn, bn = make_norm("gbgn", 4, groups=4).double(), nn.BatchNorm2d(4).double()
    for _ in range(2):
        torch.testing.assert_close(as_bn(x), bn(x))
    as_bn.eval(), bn.eval()
    torch.testing.assert_close(as_bn(x), bn(x))
    as_gn = make_norm("gbgn", 4, groups=2, examples_per_group=1).double()
    for training in (True, False):
        as_gn.train(training)
        torch.testing.assert_close(as_gn(x), F.group_norm(x, 2, eps=EPS))


def test_gbgn_evaluates_any_batch_with_its_running_statistics():
    """In eval the running estimates normalize, so an evaluation batch need not split into example groups
    (a validation batch of 1,000 under training groups of 64 examples)."""
    layer = make_norm("gbgn", 4, groups=2, examples_per_group=2).double()
    layer(torch.randn(4, 4, 2, 2, dtype=torch.double))
    layer.eval()
    x = np.random.default_rng(2).normal(size=(3, 4, 2, 2))
    mean = layer.running_mean.numpy().repeat(2)[None, :, None, None]  # one estimate per group of 2 channels
    var = layer.running_var.numpy().repeat(2)[None, :, None, None]
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), (x - mean) / np.sqrt(var + EPS),
                               rtol=1e-10)


def test_gbgn_batch_not_divisible_by_examples_per_group():
    layer = make_norm("gbgn", 4, groups=2, examples_per_group=4)
    with pytest.raises(ValueError, match=r"'gbgn'.*\(6, 4, 2, 2\).*groups of 4 examples"):
        layer(torch.randn(6, 4, 2, 2))


@pytest.mark.parametrize("name, channels, groups, options", [
    ("gn_then_bn", 4, 2, {}), ("bgn", 4, 2, {}), ("bgn", 3, 4, {}), ("gbgn", 4, 2, {"examples_per_group": 2})])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(name, channels, groups, options, training):
    layer = make_norm(name, channels, groups=groups, **options).double()
    layer(torch.randn(4, channels, 2, 2, dtype=torch.double))  # non-trivial running statistics
    layer.train(training)
    x = torch.randn(4, channels, 2, 2, dtype=torch.double, requires_grad=True)

    names, params = zip(*layer.named_parameters())

    def f(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))
