"""Output noise (GN paper §3.2.1): training only, element or (sample, group) granularity, any layer."""
import pytest
import torch
from torch import nn

from models.norms import GNPlus, OutputNoise, make_norm, norm_names


@pytest.mark.parametrize("name", ["none", "bn", "gn", "ln", "in", "gn_plus_parallel", "gn_plus_gn_first",
                                  "gn_plus_bn_first", "gn_then_bn", "bgn", "gbgn"])
def test_every_layer_gets_noise_in_training_only(name):
    assert name in norm_names()
    plain = make_norm(name, 8, groups=4)
    noisy = make_norm(name, 8, groups=4, noise_mean=0.5, noise_std=2.0)
    noisy.layer.load_state_dict(plain.state_dict())
    x = torch.randn(16, 8, 6, 6)
    torch.manual_seed(0)
    difference = noisy(x) - plain(x)
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 2.0 + 0.5
    torch.testing.assert_close(difference, expected, atol=1e-4, rtol=1e-4)  # the same draws, in order
    plain.eval(), noisy.eval()
    torch.testing.assert_close(noisy(x), plain(x))


def test_group_noise_is_one_draw_per_sample_and_channel_group():
    layer = make_norm("none", 8, groups=2, noise_mean=1e-3, noise_std=1.001, noise_granularity="group")
    x = torch.zeros(4000, 8, 3, 3)
    noise = layer(x).view(4000, 2, -1)
    assert torch.equal(noise, noise[:, :, :1].expand_as(noise))  # shared within a group
    draws = noise[:, :, 0]
    assert abs(draws.mean().item() - 1e-3) < 4 * 1.001 / (8000 ** 0.5)
    assert abs(draws.std().item() - 1.001) < 0.05


def test_wrapper_exposes_the_layer_for_callbacks_and_sync_conversion():
    noisy = make_norm("gn_plus_gn_first", 8, groups=4, noise_std=1.0)
    assert isinstance(noisy, OutputNoise) and noisy.weight is noisy.layer.weight and noisy.bias is noisy.layer.bias
    assert any(isinstance(m, GNPlus) for m in noisy.modules())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(make_norm("bn", 8, noise_std=1.0)))
    assert isinstance(converted[0], OutputNoise) and isinstance(converted[0].layer, nn.SyncBatchNorm)


def test_bad_noise_options_are_one_line():
    with pytest.raises(ValueError, match=r"^norm 'gn': noise_granularity must be one of element, group, got 'pixel'$"):
        make_norm("gn", 8, groups=4, noise_std=1.0, noise_granularity="pixel")
    with pytest.raises(ValueError, match=r"'bn'.*groups=3 does not divide num_channels=8"):
        make_norm("bn", 8, groups=3, noise_std=1.0, noise_granularity="group")
