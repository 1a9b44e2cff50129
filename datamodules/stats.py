"""Normalization constants from the data: per-channel mean and std of all training pixels (/255).

    python -m datamodules.stats cifar10 DATA_DIR      (any registered name)

prints the values a data module's `mean`/`std` should hold: what every module's constants were
computed with (over the official training split, before any validation hold-out).
"""
from __future__ import annotations

import sys

import torch


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of uint8 N×C×H×W images on the [0, 1] scale: the population std over
    all N·H·W pixels of a channel (not the mean of per-image stds). Exact sums in int64, by chunks."""
    total = torch.zeros(images.shape[1], dtype=torch.int64)
    squares = torch.zeros(images.shape[1], dtype=torch.int64)
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].to(torch.int64)
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total.double() / count
    std = (squares.double() / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


def main(argv: list[str]) -> None:
    from datamodules import DATAMODULES

    if len(argv) != 2 or argv[0] not in DATAMODULES:
        sys.exit(f"usage: python -m datamodules.stats {{{','.join(DATAMODULES)}}} DATA_DIR")
    module = DATAMODULES[argv[0]](data_dir=argv[1], download=False)
    mean, std = channel_stats(module.load_split(train=True)[0])
    print(f"{argv[0]}: mean = {tuple(round(m, 4) for m in mean)}, std = {tuple(round(s, 4) for s in std)} "
          f"(module: {module.mean}, {module.std})")


if __name__ == "__main__":
    main(sys.argv[1:])
