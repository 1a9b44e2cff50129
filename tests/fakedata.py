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
