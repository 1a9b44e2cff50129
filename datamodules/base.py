"""The shared base of every data module: in-memory uint8 images, batched transforms on the device.

All data sets of the study fit in memory as uint8 (CIFAR-10: 150 MB), so a subclass only loads
`(images uint8 N×C×H×W, labels int64 N)` per split. Batches are gathered with one tensor index per
batch (no per-sample Python), and the float conversion, augmentation and normalization run batched
in `on_after_batch_transfer`, on whatever device the model is on: 4× less host-to-device traffic.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class _InMemoryBatches(Dataset):
    """Indexed by a list of sample indices (from a BatchSampler): returns the whole batch at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


class ImageDataModule(LightningDataModule):
    """Base class. Subclasses set the class attributes and implement `load_split`."""

    name: ClassVar[str]
    num_classes: ClassVar[int]
    in_channels: ClassVar[int]
    image_size: ClassVar[int]
    mean: ClassVar[tuple[float, ...]]  # per channel, on the [0, 1] scale, from the training set
    std: ClassVar[tuple[float, ...]]

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        val_split: int | float = 5000,
        split_seed: int = 0,
        eval_batch_size: int | None = None,
        download: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        drop_last: bool = True,
    ):
        """
        Args:
            data_dir: where the data set's files are (or are downloaded to).
            batch_size: the global training batch (split across devices under DDP).
            val_split: images held out of the training set for validation: a count, or a fraction
                in (0, 1); 0 validates on the official test split (as the GN paper did).
            split_seed: seed of the fixed train/validation split (independent of the run's seed).
            eval_batch_size: batch for validation and test (default: batch_size).
            download: let `prepare_data` fetch the files with torchvision when they are missing.
            num_workers, pin_memory, persistent_workers: DataLoader settings. Batches are gathered
                from memory with one index per batch, so 0 workers is fastest on small machines.
            drop_last: drop the last incomplete training batch (a batch of one makes BN undefined).
        """
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size must be an integer >= 1, got {batch_size!r}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"data.eval_batch_size must be >= 1, got {eval_batch_size!r}")
        if isinstance(val_split, bool) or not (
            (isinstance(val_split, int) and val_split >= 0) or (isinstance(val_split, float) and 0 <= val_split < 1)
        ):
            raise ValueError(f"data.val_split must be a count >= 0 or a fraction in [0, 1), got {val_split!r}")
        self.data_dir, self.batch_size, self.val_split, self.split_seed = data_dir, batch_size, val_split, split_seed
        self.eval_batch_size = eval_batch_size or batch_size
        self.download, self.drop_last = download, drop_last
        self.loader_options = dict(num_workers=num_workers, pin_memory=pin_memory,
                                   persistent_workers=persistent_workers and num_workers > 0)
        self._splits: dict[str, _InMemoryBatches] = {}

    # -- what a subclass provides ------------------------------------------------------------------
    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images N×C×H×W, int64 labels N) of the official train or test split."""
        raise NotImplementedError

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation of a float batch in [0, 1] (none by default)."""
        return x

    # -- Lightning hooks ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        images, labels = self.load_split(train=True)
        test = _InMemoryBatches(*self.load_split(train=False))
        n_val = self._num_val(len(labels))
        if n_val == 0:
            self._splits = {"train": _InMemoryBatches(images, labels), "val": test, "test": test}
            return
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[:n_val], order[n_val:]
        self._splits = {
            "train": _InMemoryBatches(images[train_idx], labels[train_idx]),
            "val": _InMemoryBatches(images[val_idx], labels[val_idx]),
            "test": test,
        }

    def _num_val(self, n_train: int) -> int:
        n_val = self.val_split if isinstance(self.val_split, int) else math.floor(self.val_split * n_train)
        if n_val >= n_train:
            raise ValueError(f"data.val_split={self.val_split!r} leaves no training images (the set has {n_train})")
        return n_val

    @property
    def per_device_batch_size(self) -> int:
        """The global `batch_size` split over the devices (DDP gives each process its share)."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(f"data.batch_size={self.batch_size} is not divisible by the {world} devices; "
                             f"use a multiple of {world}")
        return self.batch_size // world

    def _loader(self, split: str, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        data = self._splits[split]
        sampler = RandomSampler(data) if shuffle else SequentialSampler(data)
        return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last),
                          **self.loader_options)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.per_device_batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False, drop_last=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        x = images.float().div_(255)
        if self.trainer is not None and self.trainer.training:
            x = self.augment(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std, labels
