"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 32×32 colour images, 50,000 train / 10,000 test.

Files: "the CIFAR python version" (https://www.cs.toronto.edu/~kriz/cifar.html), the folder
`cifar-10-batches-py/` (data_batch_1..5, test_batch) or `cifar-100-python/` (train, test) inside
`data_dir`, as torchvision's download extracts them. Each file is a pickled dict with `data`, a
uint8 N×3072 array (1024 red, 1024 green, 1024 blue values per image, row-major), and a label list
(`labels`; CIFAR-100 `fine_labels`). We read the pickles ourselves: torchvision's CIFAR classes check
the MD5 sum of every file (which generated test files cannot pass), and reading them here puts real
and generated files through the same code. A data folder may come from anyone, and unpickling can call
any function a file names, so the files are read by an unpickler that builds numpy arrays and nothing
else (`DataOnlyUnpickler`): a file naming another global is refused, naming it, before anything runs.

All files come from that one folder; an explicit `data_dir` lacking any is an error listing them (the
torchvision download runs only with the default `data_dir` or `download: true`). Labels outside
0..classes-1 are an error naming file and value.

Augmentation: random crop 32 with padding 4 + horizontal flip, the standard CIFAR augmentation of
He et al. 2016 ("Deep Residual Learning for Image Recognition", §4.2).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from datamodules.base import ImageDataModule, check_label_range


# The globals a CIFAR file names: numpy arrays as numpy 1 (the published files) and numpy 2 pickle them, and
# the codec Python 3's protocol 2 rebuilds bytes with. Each only builds data.
ALLOWED_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                             ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})


class DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; any other global is an UnpicklingError."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file never needs; refused "
                                         "without running it")
        return super().find_class(module, name)


def read_cifar_file(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N×3×32×32, labels N) of one CIFAR pickle file."""
    try:
        with open(path, "rb") as file:
            # the files were pickled by Python 2: 'bytes' keeps its strings as bytes (as the data
            # set's page does); keys are decoded below
            entry = DataOnlyUnpickler(file, encoding="bytes").load()
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data, labels = np.asarray(entry["data"]), np.asarray(entry[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a CIFAR python-version file ({type(error).__name__}: {error}); "
                         "delete it and download again") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != data.shape[:1]:
        raise ValueError(f"{path} holds data {data.dtype} {data.shape} and {labels.shape} labels; "
                         "expected uint8 N×3072 and N labels")
    return data.reshape(-1, 3, 32, 32), labels


class _CIFARDataModule(ImageDataModule):
    in_channels = 3
    image_size = 32
    standard_crop_padding = 4
    standard_flip = True
    folder: ClassVar[str]  # as torchvision extracts it
    files: ClassVar[dict[bool, tuple[str, ...]]]  # train -> file names
    label_key: ClassVar[str]
    torchvision_name: ClassVar[str]
    url: ClassVar[str]

    def _folder(self) -> Path:
        """`data_dir/<folder>`, or `data_dir` itself when the files lie there."""
        root = Path(self.data_dir)
        return root if (root / self.files[False][0]).is_file() else root / self.folder

    def _missing(self) -> list[str]:
        names = [name for names in self.files.values() for name in names]
        return [name for name in names if not (self._folder() / name).is_file()]

    def prepare_data(self) -> None:
        if not self._missing() or not self.may_download:
            return
        import torchvision

        dataset = getattr(torchvision.datasets, self.torchvision_name)
        self.try_download(lambda: dataset(self.data_dir, train=True, download=True))

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        missing = self._missing()
        if missing:
            raise FileNotFoundError(
                f"{self.name}: {self._folder()} lacks {', '.join(missing)} (expected "
                f"{', '.join(n for names in self.files.values() for n in names)}); {self.download_note()}; "
                f"or extract {self.url} into {self.data_dir}")
        self.data_source = str(self._folder().resolve())
        parts = [read_cifar_file(self._folder() / name, self.label_key) for name in self.files[train]]
        for name, (_, labels) in zip(self.files[train], parts):
            check_label_range(self._folder() / name, labels, self.num_classes)
        images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return torch.from_numpy(images), torch.from_numpy(labels)


class CIFAR10DataModule(_CIFARDataModule):
    name = "cifar10"
    num_classes = 10
    folder = "cifar-10-batches-py"
    files = {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)}
    label_key = "labels"
    torchvision_name = "CIFAR10"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    # Per channel over all 50,000 training images' pixels (/255): 0.49139968, 0.48215841, 0.44653091
    # and 0.24703223, 0.24348513, 0.26158784, as recomputed in kuangliu/pytorch-cifar issues #19 and
    # #129 (`python -m datamodules.stats cifar10 DIR` recomputes them). The GN paper's code uses std
    # (0.2023, 0.1994, 0.2010), the mean of per-image stds, a known mistake of kuangliu/pytorch-cifar.
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)


class CIFAR100DataModule(_CIFARDataModule):
    name = "cifar100"
    num_classes = 100
    folder = "cifar-100-python"
    files = {True: ("train",), False: ("test",)}
    label_key = "fine_labels"
    torchvision_name = "CIFAR100"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    # Per channel over all 50,000 training images' pixels (/255): 0.50707516, 0.48654887, 0.44091784
    # and 0.26733429, 0.25643846, 0.27615047 (weiaicunzai/pytorch-cifar100, conf/global_settings.py).
    # The GN paper's code reused CIFAR-10's constants here (a defect).
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
