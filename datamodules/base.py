"""The shared base of every data module: in-memory uint8 images, batched transforms on the device.

All data sets of the study fit in memory as uint8 (CIFAR-10: 150 MB), so a subclass only loads
`(images uint8 N×C×H×W, labels int64 N)` per split. Batches are gathered with one tensor index per
batch (no per-sample Python), and the float conversion, augmentation and normalization run batched
in `on_after_batch_transfer`, on whatever device the model is on: 4× less host-to-device traffic.

Two data paths, one batch stream:
- regular (`on_device: false`): a DataLoader gathers each batch on the host; the Trainer copies it;
- fast (`on_device: true`): the whole uint8 set is moved to the accelerator once and every batch is
  a slice of a device-side permutation (no workers, no host-to-device copy per step), as the CIFAR
  speed records do.
Both take the training order from `EpochBatchSampler` (a pure function of seed and epoch; DDP ranks
take disjoint shares of every global batch) and the same augmentation function with per-sample
random draws keyed by (seed, epoch, sample index), so the same seed gives identical batches on both
paths, whatever the number of workers (workers only gather; nothing random happens in them).
"""
from __future__ import annotations

import math
import os
import sys
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from datamodules.augment import crop_and_flip, crop_flip_params
from datamodules.sampling import BatchKey, EpochBatchSampler, per_device_batch_size
from value_ranges import Range, check_values, integer, is_integer, number_in


class TrainingBatch(NamedTuple):
    """A raw training batch: uint8 images, labels, and what keys its augmentation and its progress."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor  # the samples' indices in the training split
    epoch: int
    position: int  # index of its global batch within the epoch


def gather_training_batch(images: torch.Tensor, labels: torch.Tensor, key: BatchKey) -> TrainingBatch:
    return TrainingBatch(images[key.indices], labels[key.indices], key.indices, key.epoch, key.position)


class _InMemoryBatches(Dataset):
    """Indexed by a whole batch (a `BatchKey` in training, a list of indices otherwise)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        if isinstance(key, BatchKey):
            return gather_training_batch(self.images, self.labels, key)
        index = torch.as_tensor(key)
        return self.images[index], self.labels[index]


class DeviceBatches:
    """The `on_device` path: batches sliced from tensors already on the accelerator.

    With a sampler it yields training batches in the sampler's order (moved to the device once per
    epoch); without, consecutive evaluation batches. It answers Lightning's DataLoader probes as a
    DataLoader built with `batch_size=None` would: `.sampler` (where the per-epoch `set_epoch` call
    finds it; absent for evaluation, i.e. not shuffled) and `batch_sampler = None`.
    """

    batch_sampler = None

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 sampler: EpochBatchSampler | None = None):
        self.images, self.labels, self.batch_size, self._sampler = images, labels, batch_size, sampler

    @property
    def sampler(self) -> EpochBatchSampler:
        if self._sampler is None:
            raise AttributeError("evaluation batches are taken in order, without a sampler")
        return self._sampler

    def __len__(self) -> int:
        if self._sampler is not None:
            return len(self._sampler)
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        if self._sampler is None:
            for start in range(0, len(self.labels), self.batch_size):
                yield self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            return
        for key in self._sampler.batches(device=self.images.device):
            yield gather_training_batch(self.images, self.labels, key)


DEFAULT_DATA_DIR = "data"
# The ranges of the numeric options, checked in this order.
OPTIONS = {
    "batch_size": integer(1),
    "eval_batch_size": integer(1).or_none("batch_size"),
    "val_split": Range(lambda v: (is_integer(v) and v >= 0) or (isinstance(v, float) and number_in("[0, 1)").valid(v)),
                       "a count >= 0 or a fraction in [0, 1)"),
    "crop_padding": integer(0).or_none("the data set's usual"),
    "num_workers": integer(0),
}


class ImageDataModule(LightningDataModule):
    """Base class. Subclasses set the class attributes and implement `load_split`.

    Resuming: `state_dict()` is `{"epoch": e, "batches_done": k}`, the epoch in progress and how many
    of its training batches were handed to the model (counted in `on_after_batch_transfer`); an epoch
    whose batches are all done is recorded as `(e + 1, 0)`. Lightning stores it in every checkpoint
    and gives it back to `load_state_dict` on resume, and the next training batch is then batch k of
    epoch e's order: exactly the one an uninterrupted run would have taken next.
    """

    name: ClassVar[str]
    num_classes: ClassVar[int]
    in_channels: ClassVar[int]
    image_size: ClassVar[int]
    mean: ClassVar[tuple[float, ...]]  # per channel, on the [0, 1] scale, from the training set
    std: ClassVar[tuple[float, ...]]
    standard_crop_padding: ClassVar[int] = 0  # the data set's usual augmentation (CIFAR: 4 and True)
    standard_flip: ClassVar[bool] = False

    def __init__(
        self,
        data_dir: str = DEFAULT_DATA_DIR,
        batch_size: int = 128,
        val_split: int | float = 5000,
        split_seed: int = 0,
        eval_batch_size: int | None = None,
        download: bool | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        drop_last: bool = True,
        crop_padding: int | None = None,
        horizontal_flip: bool | None = None,
        on_device: bool = False,
        seed: int | None = None,
    ):
        """
        Args:
            data_dir: the one folder the data set's files come from. Left at the default `data`, it is a
                cache: a system copy (Fashion-MNIST) or a download is used when it lacks the files; any
                other folder must hold every file, or the run stops with the list of what is missing.
            batch_size: the global training batch (split across devices under DDP).
            val_split: images held out of the training set for validation: a count, or a fraction
                in (0, 1); 0 validates on the official test split (as the GN paper did, which then
                picked its best epoch on the test set).
            split_seed: seed of the fixed train/validation split (independent of the run's seed).
            eval_batch_size: batch for validation and test (default: batch_size).
            download: fetch missing files with torchvision into `data_dir`: true (asked for), false
                (never), or null (default: only when `data_dir` is left at its default).
            num_workers, pin_memory, persistent_workers: DataLoader settings. Batches are gathered
                from memory with one index per batch, so 0 workers is fastest on small machines.
            drop_last: drop the last incomplete training batch (a batch of one makes BN undefined).
            crop_padding: random-crop padding in pixels (0: no crop); default: the data set's usual.
            horizontal_flip: random left-right flips; default: the data set's usual.
            on_device: keep the whole data set on the accelerator and slice batches there.
            seed: seed of the batch order and augmentation; default: the run's `seed_everything`.
        """
        super().__init__()
        check_values("data.", OPTIONS, {"batch_size": batch_size, "eval_batch_size": eval_batch_size,
                                        "val_split": val_split, "crop_padding": crop_padding,
                                        "num_workers": num_workers})
        self.data_dir, self.batch_size, self.val_split, self.split_seed = data_dir, batch_size, val_split, split_seed
        self.eval_batch_size = eval_batch_size or batch_size
        self.download, self.drop_last, self.on_device, self.seed = download, drop_last, on_device, seed
        self.crop_padding = self.standard_crop_padding if crop_padding is None else crop_padding
        self.horizontal_flip = self.standard_flip if horizontal_flip is None else horizontal_flip
        self.loader_options = dict(num_workers=num_workers, pin_memory=pin_memory,
                                   persistent_workers=persistent_workers and num_workers > 0)
        self._splits: dict[str, _InMemoryBatches] = {}
        self._on_device_splits: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._progress = (0, 0)  # (epoch, training batches of it handed to the model)
        self._train_sampler: EpochBatchSampler | None = None
        self._scales: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.data_source: str | None = None  # the folder the files were read from, once loaded
        self.batch_statistics_norm: str | None = None  # set by `expect_norm`

    @property
    def default_data_dir(self) -> bool:
        """`data_dir` left at its default: the only case where the files may come from elsewhere."""
        return os.path.normpath(self.data_dir) == DEFAULT_DATA_DIR

    @property
    def may_download(self) -> bool:
        return self.download if self.download is not None else self.default_data_dir

    def expect_norm(self, name: str, uses_batch_statistics: bool) -> None:
        """Tell the data module the model's norm, so that `setup` refuses an epoch ending in a batch of
        one image per device for a norm that normalizes with batch statistics."""
        self.batch_statistics_norm = name if uses_batch_statistics else None

    # -- what a subclass provides ------------------------------------------------------------------
    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images N×C×H×W, int64 labels N) of the official train or test split."""
        raise NotImplementedError

    def download_note(self) -> str:
        """How the torchvision download went, for a missing-files message."""
        error = getattr(self, "_download_error", None)
        if error:
            return f"the torchvision download failed ({error})"
        if not self.may_download:
            return ("torchvision download not tried (set data.download: true to fetch them into "
                    f"{self.data_dir})")
        return "no torchvision download ran (prepare_data was not called)"

    def try_download(self, fetch) -> None:
        """Run `fetch()` (a torchvision download); remember why it failed instead of raising, so the
        missing-files error can name every source that was tried."""
        try:
            fetch()
        except Exception as error:  # no network, a mirror down, a bad checksum, ...
            self._download_error = f"{type(error).__name__}: {error}".splitlines()[0]

    # -- Lightning hooks ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        per_device_batch_size(self.batch_size, self._world()[1])  # refuse a bad batch before reading
        if not self._splits:
            self._load_splits()
        if stage == "fit":
            self._check_training_batches()

    def _load_splits(self) -> None:
        images, labels = self.load_split(train=True)
        test = _InMemoryBatches(*self.load_split(train=False))
        if self._world()[0] == 0 and self.data_source is not None:
            print(f"normlab: {self.name} data read from {self.data_source}", file=sys.stderr)
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

    def _check_training_batches(self) -> None:
        """Nothing trains on nothing: refuse, before the first step, a fit that would take no training
        step, train on batches smaller than `batch_size`, or end an epoch with a batch of one image
        per device for a norm that normalizes with batch statistics."""
        trainer = self.trainer
        if trainer is None:
            return
        for key, value in (("max_epochs", trainer.max_epochs), ("max_steps", trainer.max_steps),
                           ("limit_train_batches", trainer.limit_train_batches)):
            if value == 0:
                raise ValueError(f"trainer.{key}=0 trains nothing; use a value >= 1 (max_epochs and "
                                 "max_steps: -1 for no limit)")
        n_train, world = len(self._splits["train"]), self._world()[1]
        split = f"the training split has {n_train} images (data.val_split={self.val_split!r} held out)"
        if n_train < self.batch_size:
            raise ValueError(f"data.batch_size={self.batch_size} is larger than the training set: {split}, so "
                             + ("no batch is complete (drop_last)" if self.drop_last else
                                "every batch would be smaller than data.batch_size")
                             + f"; use a batch of at most {n_train} or a smaller val_split")
        remainder = n_train % self.batch_size
        if not self.drop_last and remainder and remainder // world == 1 and self.batch_statistics_norm:
            raise ValueError(
                f"data.drop_last=false and {split}: every epoch ends with a batch of {remainder} "
                f"({n_train} = {n_train // self.batch_size}·{self.batch_size} + {remainder}), 1 image per "
                f"device, and model.norm={self.batch_statistics_norm!r} normalizes with batch statistics; "
                "set data.drop_last: true, or change batch_size or val_split")

    def _num_val(self, n_train: int) -> int:
        n_val = self.val_split if isinstance(self.val_split, int) else math.floor(self.val_split * n_train)
        if n_train == 0:
            raise ValueError(f"{self.name}: the training split in {self.data_source} holds no images")
        if n_val >= n_train:
            raise ValueError(f"data.val_split={self.val_split!r} leaves no training images (the set has {n_train})")
        return n_val

    @property
    def run_seed(self) -> int:
        """`seed`, else the seed `seed_everything` published (LightningCLI calls it before building us)."""
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _world(self) -> tuple[int, int]:
        """(rank, world size) of this process, from the trainer; (0, 1) without one."""
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    @property
    def per_device_batch_size(self) -> int:
        """The global `batch_size` split over the devices (DDP gives each process its share)."""
        return per_device_batch_size(self.batch_size, self._world()[1])

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _split_on_device(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's tensors on the accelerator, moved there once (val and test once if they are one)."""
        data, device = self._splits[split], self._device()
        key = (id(data), device)
        if key not in self._on_device_splits:
            self._on_device_splits[key] = (data.images.to(device), data.labels.to(device))
        return self._on_device_splits[key]

    def _batches_per_epoch(self, sampler: EpochBatchSampler) -> int:
        """Training batches an epoch really runs: `limit_train_batches` may cut it short."""
        limit = getattr(self.trainer, "num_training_batches", math.inf)  # without a trainer: inf
        return min(len(sampler), limit) if math.isfinite(limit) else len(sampler)

    def _next_batch(self, sampler: EpochBatchSampler | None) -> tuple[int, int]:
        """(epoch, batch) the next training step takes: a finished epoch gives way to the next one."""
        epoch, done = self._progress
        if sampler is not None and done >= self._batches_per_epoch(sampler):
            return epoch + 1, 0
        return epoch, done

    def train_dataloader(self):
        rank, world = self._world()
        data = self._splits["train"]
        self._train_sampler = EpochBatchSampler(len(data), self.batch_size, self.run_seed, shuffle=True,
                                                drop_last=self.drop_last, rank=rank, world_size=world)
        self._train_sampler.start_at(*self._next_batch(self._train_sampler))
        if self.on_device:
            images, labels = self._split_on_device("train")
            return DeviceBatches(images, labels, self.per_device_batch_size, self._train_sampler)
        return DataLoader(data, batch_size=None, sampler=self._train_sampler, **self.loader_options)

    def _eval_loader(self, split: str):
        if self.on_device:  # every rank evaluates the whole split (no sampler for Lightning to shard)
            return DeviceBatches(*self._split_on_device(split), self.eval_batch_size)
        data = self._splits[split]
        batches = BatchSampler(SequentialSampler(data), self.eval_batch_size, drop_last=False)
        return DataLoader(data, batch_size=None, sampler=batches, **self.loader_options)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader("test")

    def predict_dataloader(self):  # `lightning predict`: the official test split, in order
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 batch → augmented (training batches only) and normalized float batch, on its device."""
        if isinstance(batch, TrainingBatch):
            images = batch.images
            if self.crop_padding or self.horizontal_flip:
                dy, dx, mirror = crop_flip_params(self.run_seed, batch.epoch, batch.indices,
                                                  self.crop_padding, self.horizontal_flip)
                images = crop_and_flip(images, dy, dx, mirror, self.crop_padding)
            if self.trainer is not None and self.trainer.training:
                self._progress = (batch.epoch, batch.position + 1)
            batch = (images, batch.labels)
        images, labels = batch
        scale, shift = self._normalization(images.device)
        return torch.addcmul(shift, images.float(), scale), labels

    def _normalization(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x/255 − mean)/std as x·scale + shift, the constants made once per device."""
        if device not in self._scales:
            mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
            self._scales[device] = ((1 / (255 * std)).float().to(device), (-mean / std).float().to(device))
        return self._scales[device]

    # -- resuming ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        epoch, done = self._next_batch(self._train_sampler)
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._progress = (int(state_dict["epoch"]), int(state_dict["batches_done"]))



def check_label_range(path, labels: np.ndarray, num_classes: int) -> None:
    """Labels must lie in 0..num_classes-1 (the classes of the cross-entropy): name the file and the first
    label outside, at load time rather than as an index error deep in the loss."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(f"{path} holds label {int(labels[bad[0]])} (index {int(bad[0])}); "
                         f"expected labels 0..{num_classes - 1}")
