"""Small data sets written in the real on-disk formats, so tests drive the real loading code."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write `array` (uint8) as an IDX file: 0x0000, dtype 0x08, ndim, big-endian sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path = Path(str(path) + ".gz") if compress else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if compress else open)(path, "wb").write(payload)
    return path


def write_fake_mnist(folder: Path, n_train: int = 256, n_test: int = 64, seed: int = 0,
                     compress: bool = True) -> dict[str, np.ndarray]:
    """MNIST-format files with learnable content: each class is a bright block at its own position."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 5)
            images[i, 4 + 10 * r: 12 + 10 * r, 1 + 5 * c: 5 + 5 * c] = 250
        write_idx(folder / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, compress)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def _marked_images(rng: np.random.Generator, labels: np.ndarray, channels: int, side: int) -> np.ndarray:
    """Noise images N×C×side×side where class k has a bright 3×3 block at its own place (grid of 10)."""
    images = rng.integers(0, 60, (len(labels), channels, side, side)).astype(np.uint8)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 10)
        images[i, :, 1 + 3 * r: 4 + 3 * r, 1 + 3 * c: 4 + 3 * c] = 250
    return images


def _python2_pickle(obj) -> bytes:
    """Pickle (protocol 2) as Python 2 did for the CIFAR files: `bytes` become Python 2 `str` opcodes,
    which Python 3 loads as str with encoding='latin1' (torchvision) and as bytes with 'bytes'."""
    import io
    import pickle

    class Python2Pickler(pickle._Pickler):
        dispatch = pickle._Pickler.dispatch.copy()

        def save_python2_str(self, value: bytes) -> None:
            short = len(value) < 256
            self.write((pickle.SHORT_BINSTRING + bytes([len(value)])) if short
                       else (pickle.BINSTRING + struct.pack("<i", len(value))))
            self.write(value)
            self.memoize(value)

        dispatch[bytes] = save_python2_str

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_fake_cifar(root: Path, num_classes: int = 10, n_train: int = 250, n_test: int = 50,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR "python version" files under `root` (`cifar-10-batches-py/` or `cifar-100-python/`): dicts
    pickled as by Python 2, with uint8 N×3072 `data` (R, G, B planes) and a label list."""
    rng = np.random.default_rng(seed)
    cifar10 = num_classes == 10
    folder = Path(root) / ("cifar-10-batches-py" if cifar10 else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, num_classes, n)
        images = _marked_images(rng, labels, 3, 32)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        if not cifar10:
            names = [split]
        else:
            names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        for name, part in zip(names, np.array_split(np.arange(n), len(names))):
            entry = {b"batch_label": name.encode(), b"data": images[part].reshape(len(part), 3072),
                     b"filenames": [f"img_{i}.png".encode() for i in part]}
            if cifar10:
                entry[b"labels"] = [int(v) for v in labels[part]]
            else:
                entry[b"fine_labels"] = [int(v) for v in labels[part]]
                entry[b"coarse_labels"] = [int(v) // 5 for v in labels[part]]
            (folder / name).write_bytes(_python2_pickle(entry))
    meta_name, meta_key = ("batches.meta", b"label_names") if cifar10 else ("meta", b"fine_label_names")
    class_names = [f"class{k}".encode() for k in range(num_classes)]
    (folder / meta_name).write_bytes(_python2_pickle({meta_key: class_names}))
    return arrays


def write_fake_svhn(folder: Path, n_train: int = 250, n_test: int = 50, n_extra: int = 0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """SVHN cropped-digit files (`train_32x32.mat`, ...): MATLAB v5, `X` uint8 32×32×3×N, `y` N×1 in
    1..10 with 10 for the digit 0. Returned arrays are in the loader's layout (N×3×32×32, labels 0..9)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test), ("extra", n_extra)):
        if n == 0:
            continue
        labels = rng.integers(0, 10, n)
        images = _marked_images(rng, labels, 3, 32)
        mat_labels = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
        mat = {"X": images.transpose(2, 3, 1, 0), "y": mat_labels}  # X is H×W×C×N
        scipy.io.savemat(str(Path(folder) / f"{split}_32x32.mat"), mat)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays
