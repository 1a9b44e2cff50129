"""MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017): 28×28 grey images, 10 classes,
60,000 train / 10,000 test, stored in the IDX format (optionally gzipped).

Where the files come from, in order: `data_dir` (flat, or torchvision's `<Name>/raw/` layout), a
system copy (Debian's `dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist),
then torchvision's download into `data_dir` when `download: true`.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from datamodules.base import ImageDataModule

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
        root = Path(self.data_dir)
        return [root, root / self.torchvision_name / "raw", *map(Path, self.system_dirs)]

    def _find(self, stem: str) -> Path | None:
        for folder in self._candidate_dirs():
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    def _has_files(self) -> bool:
        return all(self._find(stem) for pair in IDX_FILES.values() for stem in pair)

    def prepare_data(self) -> None:
        if self._has_files() or not self.download:
            return
        import torchvision

        dataset = getattr(torchvision.datasets, self.torchvision_name)
        self.try_download(lambda: [dataset(self.data_dir, train=train, download=True)
                                   for train in (True, False)])

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images_stem, labels_stem = IDX_FILES[train]
        images_path, labels_path = self._find(images_stem), self._find(labels_stem)
        if images_path is None or labels_path is None:
            raise FileNotFoundError(
                f"{self.name}: no {images_stem}[.gz] / {labels_stem}[.gz] found; looked in "
                + ", ".join(str(d) for d in self._candidate_dirs()) + f"; {self.download_note()}"
                + (". On Debian: apt-get install dataset-fashion-mnist" if self.system_dirs else "")
            )
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(f"{self.name}: {images_path} holds {images.shape} images and {labels_path} "
                             f"{labels.shape} labels; expected N×28×28 images and N labels")
        if labels.max(initial=0) >= self.num_classes:
            raise ValueError(f"{self.name}: {labels_path} has label {labels.max()}, expected 0..{self.num_classes - 1}")
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
