"""The training batch order: a pure function of (seed, epoch), shared by both data paths and all ranks.

Epoch e's order is `randperm(n)` from a generator seeded with `seed` and `e` (or 0..n-1 unshuffled);
global batch j is `order[j·B : (j+1)·B]`. Under DDP every rank computes the same order and takes its
own contiguous share `[r·b : (r+1)·b]` (b = B / world_size) of every global batch, so the ranks
together see exactly the batches one device would, and the per-device batch stays b.

A run resumed mid-epoch skips the batches already consumed (`start_at`), so it continues with exactly
the batch an uninterrupted run would have taken next.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import torch
from torch.utils.data import DistributedSampler

from datamodules.keys import epoch_key


class BatchKey(NamedTuple):
    """What one training step receives from the sampler: its place in the run and its sample indices."""

    epoch: int
    position: int  # index of the global batch within the epoch
    indices: torch.Tensor  # this rank's sample indices, int64


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The sample order of one epoch: depends on nothing but its arguments."""
    if not shuffle:
        return torch.arange(num_samples)
    # a hashed key: the CPU generator keeps only 32 bits of its seed, so seed and epoch are mixed first
    generator = torch.Generator().manual_seed(epoch_key(seed, epoch))
    return torch.randperm(num_samples, generator=generator)


def per_device_batch_size(batch_size: int, world_size: int) -> int:
    """The share of a global batch each of `world_size` devices gets; refuses a batch it does not divide."""
    if batch_size % world_size:
        raise ValueError(f"data.batch_size={batch_size} is not divisible by the {world_size} devices; "
                         f"use a multiple of {world_size}")
    return batch_size // world_size


class EpochBatchSampler(DistributedSampler):
    """Yields one `BatchKey` per global batch of the epoch: this rank's share of it.

    It subclasses `DistributedSampler` because it is one: it already shards each batch over the
    ranks. Lightning injects its own `DistributedSampler` into a training DataLoader under DDP unless
    the loader's sampler is one already (pytorch_lightning 2.6.6,
    `trainer/connectors/data_connector.py`, `_requires_distributed_sampler`); an injected sampler
    would shard our list of batches a second time.

    `set_epoch` (called by Lightning before each epoch's iterator is made, except the first epoch of
    a fit, whose iterator is made earlier) selects the order; `start_at` (from a checkpoint) sets the
    epoch and the number of its batches to skip.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        super().__init__(range(num_samples), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.per_device = per_device_batch_size(batch_size, world_size)
        self.size, self.batch_size = num_samples, batch_size
        self.skip = 0
        remainder = num_samples % batch_size
        if not drop_last and world_size > 1 and 0 < remainder < world_size:
            raise ValueError(f"the last training batch has {remainder} images, fewer than the {world_size} "
                             "devices; set data.drop_last: true")

    def __len__(self) -> int:
        """Global batches per epoch (the same on every rank)."""
        full, remainder = divmod(self.size, self.batch_size)
        return full + (1 if remainder and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0  # a skip belongs to the epoch a checkpoint interrupted, never to a later one
        self.epoch = epoch

    def start_at(self, epoch: int, batches_done: int) -> None:
        self.epoch, self.skip = epoch, batches_done

    def rank_share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (an incomplete last batch is split as evenly as possible)."""
        if len(batch) == self.batch_size:
            return batch[self.rank * self.per_device:(self.rank + 1) * self.per_device]
        return batch.tensor_split(self.num_replicas)[self.rank]

    def __iter__(self) -> Iterator[BatchKey]:
        return self.batches()

    def batches(self, device: torch.device | str | None = None) -> Iterator[BatchKey]:
        """The epoch's batches; with `device`, the order moves there once and every batch is a slice of it."""
        epoch, skip = self.epoch, self.skip
        order = epoch_order(self.size, self.seed, epoch, self.shuffle)
        if device is not None:
            order = order.to(device)
        for position in range(skip, len(self)):
            yield BatchKey(epoch, position, self.rank_share(order[position * self.batch_size:
                                                                  (position + 1) * self.batch_size]))
