"""The batched crop/flip (datamodules/augment.py) against torchvision's per-image transforms, its hash
against a plain-integer reference, and the statistics of its random draws (uniform offsets, fair flips)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from scipy.stats import chi2

from datamodules.augment import crop_and_flip, crop_flip_params
from datamodules.keys import mix32


def lowbias32_reference(x: int) -> int:
    """C. Wellons' lowbias32 with Python's exact integers: multiply, then keep 32 bits."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_tensor_hash_matches_the_exact_integer_hash():
    values = [0, 1, 2, 0xFFFFFFFF, 0x80000000, *np.random.default_rng(0).integers(0, 2**32, 500).tolist()]
    assert mix32(torch.tensor(values)).tolist() == [lowbias32_reference(v) for v in values]
    assert [mix32(v) for v in values[:20]] == [lowbias32_reference(v) for v in values[:20]]


def test_crop_and_flip_equals_torchvision_pad_crop_flip():
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    dy, dx = torch.randint(0, 9, (12,)), torch.randint(0, 9, (12,))
    mirror = torch.arange(12) % 2 == 0
    out = crop_and_flip(images, dy, dx, mirror, padding=4)
    for i in range(12):  # RandomCrop(32, padding=4) pads with 0, then crops at (top, left); then hflip
        expected = TF.crop(TF.pad(images[i], [4]), int(dy[i]), int(dx[i]), 32, 32)
        expected = TF.hflip(expected) if mirror[i] else expected
        assert torch.equal(out[i], expected), i
    assert out.dtype == torch.uint8


def test_offsets_are_uniform_flips_fair_and_independent():
    n, padding = 81_000, 4
    dy, dx, mirror = crop_flip_params(seed=7, epoch=3, indices=torch.arange(n), padding=padding, flip=True)
    side = 2 * padding + 1
    assert dy.min() == 0 and dy.max() == side - 1 and dx.min() == 0 and dx.max() == side - 1
    # joint (dy, dx, mirror) over its 162 cells: chi-square at a one-in-a-million false-alarm level
    cells = torch.bincount((dy * side + dx) * 2 + mirror.long(), minlength=side * side * 2).double()
    expected = n / (side * side * 2)
    statistic = ((cells - expected) ** 2 / expected).sum().item()
    assert statistic < chi2.ppf(1 - 1e-6, df=side * side * 2 - 1), statistic
    assert abs(mirror.double().mean().item() - 0.5) < 5 * 0.5 / n ** 0.5
    # neighbouring sample indices draw unrelated values (a hash of a counter, not a sequence)
    for draws in (dy.double(), dx.double(), mirror.double()):
        correlation = torch.corrcoef(torch.stack([draws[:-1], draws[1:]]))[0, 1].item()
        assert abs(correlation) < 5 / n ** 0.5, correlation


def test_draws_depend_on_seed_epoch_and_sample_only():
    indices = torch.tensor([5, 17, 99, 1234])
    a = crop_flip_params(1, 2, indices, 4, True)
    shuffled = crop_flip_params(1, 2, indices.flip(0), 4, True)  # another batch order, same samples
    assert all(torch.equal(x.flip(0), y) for x, y in zip(a, shuffled))
    for other in (crop_flip_params(2, 2, indices, 4, True), crop_flip_params(1, 3, indices, 4, True)):
        assert not all(torch.equal(x, y) for x, y in zip(a, other))


@pytest.mark.parametrize("flip", [False, True])
def test_no_flip_means_no_mirror(flip):
    _, _, mirror = crop_flip_params(0, 0, torch.arange(1000), 0, flip)
    assert mirror.any() == flip
