"""`momentum: null` gives every layer with running statistics the cumulative average that
`torch.nn.BatchNorm2d(momentum=None)` keeps: after batches of different scales, each layer's running mean
and variance (its BN part's, for the GNPlus layers and GN→BN) equal torch's BatchNorm2d fed what that
BN part normalizes; with the default momentum they differ (so the comparison can tell the two apart)."""
import pytest
import torch
import torch.nn.functional as F

from models.norms import make_norm

C, G = 8, 4


def batches():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(6, C, 5, 5, generator=generator) * scale + shift
            for scale, shift in ((1.0, 0.0), (3.0, 2.0), (0.5, -1.0), (2.0, 5.0))]


def bn_part_input(norm: str, x: torch.Tensor) -> torch.Tensor:
    """What the layer's batch-statistics part normalizes (the GN paper, §4: GN first normalizes GN(x))."""
    return F.group_norm(x, G) if norm in ("gn_plus_gn_first", "gn_then_bn") else x


def running_statistics(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's running (mean, var) as its state dict holds them (its BN part's for composite layers)."""
    state = layer.state_dict()
    (mean_key,) = [k for k in state if k.endswith("running_mean")]
    return state[mean_key], state[mean_key.replace("running_mean", "running_var")]


# bgn with G = C and gbgn over the whole batch with G = C normalize each channel over the batch: BN's statistics.
@pytest.mark.parametrize("norm,groups", [("bn", G), ("gn_plus_parallel", G), ("gn_plus_gn_first", G),
                                         ("gn_plus_bn_first", G), ("gn_then_bn", G), ("bgn", C), ("gbgn", C)])
def test_momentum_null_keeps_torchs_cumulative_average(norm, groups):
    layer = make_norm(norm, C, groups, momentum=None).train()
    reference = torch.nn.BatchNorm2d(C, momentum=None, affine=False).train()
    default = torch.nn.BatchNorm2d(C, affine=False).train()  # momentum 0.1
    for x in batches():
        layer(x)
        reference(bn_part_input(norm, x))
        default(bn_part_input(norm, x))
    mean, var = running_statistics(layer)
    torch.testing.assert_close(mean, reference.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(var, reference.running_var, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(reference.running_mean, default.running_mean, atol=1e-2)
