"""`channel_stats` (datamodules/stats.py), the helper behind every module's mean/std, against numpy."""
import numpy as np
import torch

from datamodules.stats import channel_stats


def test_channel_stats_match_numpy_over_all_pixels():
    images = np.random.default_rng(0).integers(0, 256, (50, 3, 8, 8)).astype(np.uint8)
    images[:, 2] //= 4  # channels with different statistics
    mean, std = channel_stats(torch.from_numpy(images), chunk=7)  # chunks that do not divide N
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=1), rtol=1e-10)
    # the population std over all pixels, not the mean of per-image stds of the GN paper's code
    per_image = (images.astype(np.float64) / 255).std(axis=(2, 3)).mean(axis=0)
    assert not np.allclose(std, per_image, rtol=1e-3)
