"""`MomentAffine`'s fused backward takes upstream gradients in any layout, in float64.

`y.sum().backward()` hands a layer an expanded gradient (stride 0 everywhere); `y.mean((2, 3))` one
expanded over H, W; channels-last, transposed or sliced tensors come non-contiguous. Each must give
the gradients (input, γ, β, λ) the same gradient gives as a dense contiguous copy, the layout
the gradcheck tests (test_norms_gn_plus.py, test_norms_candidates.py) verify against finite differences.
"""
import pytest
import torch

from models.norms import make_norm

SHAPE = (3, 8, 4, 6)
FUSED = ["gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first", "bgn", "gbgn"]


def upstream_gradients() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.double)

    n, c, h, w = SHAPE
    return {
        "scalar expanded (y.sum())": torch.tensor(0.7, dtype=torch.double).expand(SHAPE),
        "expanded over H, W": randn(n, c, 1, 1).expand(SHAPE),
        "expanded over W": randn(n, c, h, 1).expand(SHAPE),
        "expanded over N": randn(1, c, h, w).expand(SHAPE),
        "expanded over N and H": randn(1, c, 1, w).expand(SHAPE),
        "channels-last": randn(*SHAPE).contiguous(memory_format=torch.channels_last),
        "transposed": randn(w, h, c, n).permute(3, 2, 1, 0),
        "sliced": randn(n, c, h, 2 * w)[..., ::2],
    }


@pytest.mark.parametrize("channels_last_input", [False, True])
@pytest.mark.parametrize("name", FUSED)
def test_any_gradient_layout_gives_the_dense_copys_gradients(name, channels_last_input):
    layer = make_norm(name, SHAPE[1], groups=4).double().train()
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(SHAPE, generator=gen, dtype=torch.double) * 2 + 1)
    if channels_last_input:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    inputs = [x, *layer.parameters()]
    for kind, grad in upstream_gradients().items():
        assert not grad.is_contiguous(), kind
        got = torch.autograd.grad(layer(x), inputs, grad)
        expected = torch.autograd.grad(layer(x), inputs, grad.contiguous())
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=kind)
