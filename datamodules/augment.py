"""Training augmentation, batched on the device: random crop with zero padding + horizontal flip.

The transform is torchvision's `RandomCrop(size, padding=p)` + `RandomHorizontalFlip()`, the standard
CIFAR augmentation (He, Zhang, Ren and Sun 2016, "Deep Residual Learning for Image Recognition",
§4.2: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled from the padded image
or its horizontal flip"), as kuangliu/pytorch-cifar implements it: each image is zero-padded by p pixels
on every side, the size×size window at a uniform random offset (dy, dx) ∈ {0..2p}² is cut out, and it
is mirrored left-right with probability 1/2. Padding the uint8 image with 0 and normalizing after the
crop gives the same pixels as torchvision (which pads the PIL image with 0 before `Normalize`).

The random draws are not taken from a stateful generator but from a counter-based hash of
(seed, epoch, sample index) (`keys.py`): a sample gets the same crop and flip whichever data path,
device, batch, worker or DDP rank processes it, and a run resumed mid-epoch draws exactly what an
uninterrupted run would have.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from datamodules.keys import MASK32, epoch_key, mix32


def crop_flip_params(seed: int, epoch: int, indices: torch.Tensor, padding: int, flip: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (dy, dx, mirror) of the given sample indices, on their device.

    dy, dx are uniform on {0..2·padding} and mirror is a fair coin (False everywhere if not `flip`);
    all three come from one 32-bit hash of (seed, epoch, index), whose 2³² values split into
    (2p+1)²·2 near-equal classes (bias < 10⁻⁷).
    """
    h = mix32((indices.long() & MASK32) ^ epoch_key(seed, epoch))
    side = 2 * padding + 1
    dy, dx = h % side, (h // side) % side
    mirror = ((h // (side * side)) % 2 == 1) & flip
    return dy, dx, mirror


def crop_and_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, mirror: torch.Tensor,
                  padding: int) -> torch.Tensor:
    """Zero-pad N×C×H×W `images` by `padding`, cut the H×W window at (dy, dx) of each image, mirror
    the images where `mirror`: one gather over the batch, any dtype (uint8 here, before float)."""
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4) if padding else images
    columns = torch.arange(w, device=images.device)
    rows = dy[:, None] + torch.arange(h, device=images.device)  # N×H
    cols = dx[:, None] + torch.where(mirror[:, None], w - 1 - columns, columns)  # N×W
    flat_index = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # N×H×W into the padded plane
    return padded.flatten(2).gather(2, flat_index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
