"""GNPlus (GN paper §4) against compositions of torch's F.group_norm / F.batch_norm, in float64."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.norms import GNPlus, make_norm
from tests.models.layer_gradcheck import layer_gradcheck

VARIANTS = ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"]
GROUPS, EPS = 4, 1e-5


def _layer(name, lambda_init=1.0, dtype=torch.double):
    layer = make_norm(name, 8, groups=GROUPS, lambda_init=lambda_init).to(dtype)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(8, generator=gen))
        layer.bias.copy_(torch.randn(8, generator=gen))
    return layer


def _input(seed=0, shape=(6, 8, 5, 3), dtype=torch.double):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * 3 + 2).to(dtype)


def _composition(name, x, s, bn, layer):
    """The paper's formula from torch's own kernels; `bn` is an independent nn.BatchNorm2d(affine=False)."""
    gn = lambda t: F.group_norm(t, GROUPS, eps=EPS)  # noqa: E731
    if name == "gn_plus_parallel":
        mixed = s * gn(x) + (1 - s) * bn(x)
    elif name == "gn_plus_gn_first":
        z = gn(x)
        mixed = s * z + (1 - s) * bn(z)
    else:
        z = bn(x)
        mixed = s * gn(z) + (1 - s) * z
    return mixed * layer.weight[:, None, None] + layer.bias[:, None, None]


@pytest.mark.parametrize("name", VARIANTS)
def test_equals_hand_composition_in_train_and_eval_with_running_statistics(name):
    layer = _layer(name)
    bn = nn.BatchNorm2d(8, eps=EPS, affine=False).double()
    s = torch.sigmoid(torch.tensor(1.0, dtype=torch.double))
    for step in range(3):
        x = _input(step)
        torch.testing.assert_close(layer(x), _composition(name, x, s, bn, layer))
    torch.testing.assert_close(layer.bn.running_mean, bn.running_mean)
    torch.testing.assert_close(layer.bn.running_var, bn.running_var)
    assert int(layer.bn.num_batches_tracked) == 3
    layer.eval(), bn.eval()
    x = _input(7, shape=(2, 8, 5, 3))
    torch.testing.assert_close(layer(x), _composition(name, x, s, bn, layer))
    # eval: a sample's output does not depend on the rest of the batch
    torch.testing.assert_close(layer(x[:1]), layer(x)[:1])


@pytest.mark.parametrize("name, large, small", [
    ("gn_plus_parallel", "gn", "bn"), ("gn_plus_gn_first", "gn", "bn_of_gn"), ("gn_plus_bn_first", "gn_of_bn", "bn")])
def test_lambda_limits(name, large, small):
    x = _input()
    gn = lambda t: F.group_norm(t, GROUPS, eps=EPS)  # noqa: E731
    bn = lambda t: F.batch_norm(t, None, None, training=True, eps=EPS)  # noqa: E731
    limits = {"gn": gn(x), "bn": bn(x), "bn_of_gn": bn(gn(x)), "gn_of_bn": gn(bn(x))}
    for lambda_init, expected in ((60.0, large), (-60.0, small)):
        layer = make_norm(name, 8, groups=GROUPS, lambda_init=lambda_init).double()
        torch.testing.assert_close(layer(x), limits[expected])


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_including_lambda(name, training):
    layer = _layer(name, lambda_init=0.4)
    layer(_input(3))  # give the running statistics non-trivial values
    layer.train(training)
    assert {name for name, _ in layer.named_parameters()} == {"lambda_", "weight", "bias"}
    assert layer_gradcheck(layer, _input(4, shape=(3, 8, 2, 3)))


@pytest.mark.parametrize("name", VARIANTS)
def test_second_derivatives_for_hessian_vector_products(name):
    assert layer_gradcheck(_layer(name, lambda_init=-0.3), _input(5, shape=(2, 8, 2, 1)), second_order=True)


@pytest.mark.parametrize("name", VARIANTS)
def test_float32_matches_float64_composition(name):
    layer64 = _layer(name)
    layer32 = _layer(name, dtype=torch.float32)
    x = _input(6, shape=(16, 8, 7, 7))
    y32 = layer32(x.float())
    y64 = _composition(name, x, torch.sigmoid(torch.tensor(1.0, dtype=torch.double)),
                       nn.BatchNorm2d(8, eps=EPS, affine=False).double(), layer64)
    torch.testing.assert_close(y32.double(), y64, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", VARIANTS)
def test_replaced_bn_part_runs_the_plain_composition(name):
    """A BN part of another type (SyncBatchNorm after conversion) gets the composition: same numbers."""

    class OtherBatchNorm(nn.BatchNorm2d):
        pass

    fast, composed = _layer(name, lambda_init=0.2), _layer(name, lambda_init=0.2)
    composed.bn = OtherBatchNorm(8, eps=EPS, affine=False).double()
    x = _input(8).requires_grad_()
    y_fast, y_composed = fast(x), composed(x)
    torch.testing.assert_close(y_fast, y_composed)
    grad = torch.randn_like(y_fast)
    grads_fast = torch.autograd.grad(y_fast, (x, fast.lambda_, fast.weight), grad)
    grads_composed = torch.autograd.grad(y_composed, (x, composed.lambda_, composed.weight), grad)
    for a, b in zip(grads_fast, grads_composed):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(fast.bn.running_var, composed.bn.running_var)


@pytest.mark.parametrize("name", VARIANTS)
def test_sync_batchnorm_conversion_reaches_the_bn_part(name):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), make_norm(name, 8, groups=GROUPS))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], GNPlus) and isinstance(converted[1].bn, nn.SyncBatchNorm)
    assert converted[1].lambda_ is model[1].lambda_


def test_lambda_is_a_parameter_and_gn_weight_its_sigmoid():
    layer = make_norm("gn_plus_gn_first", 8, groups=GROUPS, lambda_init=0.5)
    assert isinstance(layer.lambda_, nn.Parameter) and layer.lambda_.shape == ()
    assert layer.gn_weight.item() == pytest.approx(1 / (1 + torch.exp(torch.tensor(-0.5)).item()))
    assert not layer.gn_weight.requires_grad
    with pytest.raises(AttributeError):
        layer.gn_weight = torch.tensor(0.3)


@pytest.mark.parametrize("name", VARIANTS)
def test_channels_last_input_gives_the_same_output_and_gradients(name):
    layer = _layer(name)
    x = _input(9)
    x_nhwc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    y, y_nhwc = layer(x), layer(x_nhwc)
    torch.testing.assert_close(y_nhwc, y)
    grad = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y_nhwc, x_nhwc, grad)[0], torch.autograd.grad(y, x, grad)[0])


@pytest.mark.parametrize("name", VARIANTS + ["gbgn"])
def test_inputs_far_from_zero_keep_their_precision_in_float32_and_bf16_autocast(name):
    # |mean| = 200·std: E[x²] − E[x]² in float32 would lose the variance; bf16 statistics or a bf16
    # multiply-add would be off by O(1).
    layer = make_norm(name, 8, groups=GROUPS)
    x = _input(10, shape=(8, 8, 6, 6), dtype=torch.double) * 0.5 / 3 + 100
    torch.testing.assert_close(copy.deepcopy(layer)(x.float()).double(), copy.deepcopy(layer).double()(x),
                               atol=2e-3, rtol=0)
    x_bf16 = x.bfloat16()  # the reference sees the same (bf16-rounded) values
    reference = copy.deepcopy(layer).double()(x_bf16.double())
    with torch.autocast("cpu", torch.bfloat16):
        out = layer(x_bf16)
    assert out.dtype == torch.bfloat16 and (out.double() - reference).abs().max() < 0.05
