"""MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017): 28×28 grey images, 10 classes,
60,000 train / 10,000 test, stored in the IDX format (optionally gzipped).

All four files come from one folder, never a mix: `data_dir` (flat, or torchvision's `<Name>/raw/`
layout). Only when `data_dir` is left at its default (`data`) may that folder be a system copy
(Debian's `dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist) or
torchvision's download into `data_dir`; an explicit `data_dir` lacking any file is an error listing
them (`download: true` fetches them there). Labels outside 0..9 are an error naming file and value.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from datamodules.base import DEFAULT_DATA_DIR, ImageDataModule, check_label_range

IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or .gz): magic 0x0000, a dtype byte, ndim, ndim big-endian int32 sizes."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(raw)} bytes, the header promises {expected}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape)


class _IDXDataModule(ImageDataModule):
    in_channels = 1
    image_size = 28
    num_classes = 10
    torchvision_name: ClassVar[str]  # the torchvision class (and folder) name
    system_dirs: ClassVar[tuple[str, ...]] = ()

    def _candidate_dirs(self) -> list[Path]:
        """The folders that may hold all four files, in order of preference."""
        root = Path(self.data_dir)
        system = map(Path, self.system_dirs) if self.default_data_dir else ()
        return [root, root / self.torchvision_name / "raw", *system]

    def _files_in(self, folder: Path) -> dict[str, Path | None]:
        """Each IDX file's path in `folder` (plain or .gz), None where it is missing."""
        stems = [stem for pair in IDX_FILES.values() for stem in pair]
        return {stem: next((folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()), None)
                for stem in stems}

    def _source(self) -> Path | None:
        """The first folder holding every file."""
        return next((d for d in self._candidate_dirs() if all(self._files_in(d).values())), None)

    def prepare_data(self) -> None:
        if self._source() is not None or not self.may_download:
            return
        import torchvision

        dataset = getattr(torchvision.datasets, self.torchvision_name)
        self.try_download(lambda: [dataset(self.data_dir, train=train, download=True)
                                   for train in (True, False)])

    def _missing_message(self) -> str:
        root, layout, *system = self._candidate_dirs()
        looked = [root, *([layout] if layout.is_dir() else []), *system]  # torchvision's layout only if there
        places = "; ".join(f"{d} lacks " + ", ".join(f"{stem}[.gz]" for stem, p in self._files_in(d).items()
                                                       if p is None)
                           for d in looked)
        rule = "" if self.default_data_dir else "; an explicit data_dir must hold every file" + (
            f" (the system copy is used only with the default data_dir '{DEFAULT_DATA_DIR}')"
            if self.system_dirs else "")
        debian = ". On Debian: apt-get install dataset-fashion-mnist" if rule == "" and self.system_dirs else ""
        return f"{self.name}: {places}{rule}; {self.download_note()}{debian}"

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        folder = self._source()
        if folder is None:
            raise FileNotFoundError(self._missing_message())
        self.data_source = str(folder.resolve())
        images_path, labels_path = (self._files_in(folder)[stem] for stem in IDX_FILES[train])
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(f"{self.name}: {images_path} holds {images.shape} images and {labels_path} "
                             f"{labels.shape} labels; expected N×28×28 images and N labels")
        check_label_range(labels_path, labels, self.num_classes)
        return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class MNISTDataModule(_IDXDataModule):
    name = "mnist"
    torchvision_name = "MNIST"
    # Computed over the 60,000 training images (pixel values / 255).
    mean = (0.1307,)
    std = (0.3081,)


class FashionMNISTDataModule(_IDXDataModule):
    name = "fashion_mnist"
    torchvision_name = "FashionMNIST"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    # Computed over the 60,000 training images (pixel values / 255).
    mean = (0.2860,)
    std = (0.3530,)
