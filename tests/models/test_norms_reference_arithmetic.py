"""reference_arithmetic=True against a numpy re-derivation of the published code of Gunawan, Yin & Zhang
2022 (github.com/agusgun/UnderstandingGroupNorm, `GroupNorm2d` and the GNPlus layers):
GN over (C/G·H·W) per sample with the unbiased std and ε added to the std; the "BN" part over the
batch axis only, per (C, H, W) position, unbiased std + ε, batch statistics also in eval."""
import numpy as np
import pytest
import torch

from models.norms import make_norm
from tests.models.layer_gradcheck import layer_gradcheck

G, EPS = 2, 1e-5


def reference_gn(x):
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(n):
        for g in range(G):
            block = x[i, g * c // G:(g + 1) * c // G]
            out[i, g * c // G:(g + 1) * c // G] = (block - block.mean()) / (block.std(ddof=1) + EPS)
    return out


def reference_bn(x):
    return (x - x.mean(axis=0)) / (x.std(axis=0, ddof=1) + EPS)


def _affine(layer):
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))
    return layer.weight.detach().numpy()[:, None, None], layer.bias.detach().numpy()[:, None, None]


@pytest.mark.parametrize("training", [True, False])
def test_gn_reference_arithmetic(training):
    layer = make_norm("gn", 4, groups=G, reference_arithmetic=True).double().train(training)
    weight, bias = _affine(layer)
    x = np.random.default_rng(0).normal(1.0, 2.0, (3, 4, 3, 2))
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), reference_gn(x) * weight + bias, rtol=1e-10)


@pytest.mark.parametrize("name", ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
@pytest.mark.parametrize("training", [True, False])
def test_gn_plus_reference_arithmetic(name, training):
    layer = make_norm(name, 4, groups=G, lambda_init=0.7, reference_arithmetic=True).double().train(training)
    weight, bias = _affine(layer)
    s = 1 / (1 + np.exp(-layer.lambda_.item()))  # λ = 0.7 as stored (a float32 parameter before .double())
    x = np.random.default_rng(1).normal(-1.0, 3.0, (5, 4, 2, 3))
    if name == "gn_plus_parallel":
        mixed = s * reference_gn(x) + (1 - s) * reference_bn(x)
    elif name == "gn_plus_gn_first":
        mixed = s * reference_gn(x) + (1 - s) * reference_bn(reference_gn(x))
    else:
        mixed = s * reference_gn(reference_bn(x)) + (1 - s) * reference_bn(x)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), mixed * weight + bias, rtol=1e-10,
                               atol=1e-12)


def test_reference_gn_plus_refuses_a_batch_of_one_even_in_eval():
    # the code's unbiased std over one sample is NaN (division by n − 1 = 0): refuse instead
    layer = make_norm("gn_plus_gn_first", 4, groups=G, reference_arithmetic=True).eval()
    with pytest.raises(ValueError, match=r"'gn_plus_gn_first'.*\(1, 4, 2, 2\)"):
        layer(torch.randn(1, 4, 2, 2))


@pytest.mark.parametrize("name", ["gn", "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first"])
def test_reference_arithmetic_gradcheck(name):
    layer = make_norm(name, 4, groups=G, reference_arithmetic=True).double()
    assert layer_gradcheck(layer, torch.randn(3, 4, 2, 2, dtype=torch.double))
