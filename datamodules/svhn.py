"""SVHN (Netzer et al. 2011), the cropped-digits format: 32×32 colour images of house-number digits,
73,257 train / 26,032 test / 531,131 extra, 10 classes.

Files: `train_32x32.mat`, `test_32x32.mat` (and `extra_32x32.mat` with `use_extra: true`) in
`data_dir`, as torchvision downloads them (http://ufldl.stanford.edu/housenumbers/). Each is a
MATLAB v5 file with `X`, uint8 32×32×3×N, and `y`, N×1 labels 1..10 where 10 stands for the digit 0
(mapped to 0 here, as torchvision does). We read them with scipy ourselves: torchvision's SVHN
checks each file's MD5 sum, which generated test files cannot pass.

No augmentation and the train split only by default, as the GN paper's SVHN runs (Gunawan, Yin
and Zhang, "Understanding and Improving Group Normalization", §5.2 and Appendix B.1: no
augmentation and no extra split are listed); `use_extra: true` trains on train + extra (the normalization
constants stay those of the train split). All files come from `data_dir`; an explicit `data_dir`
lacking any is an error listing them (the download runs only with the default `data_dir` or
`download: true`).

Batch 8 needs `drop_last: true` (the default): 73,257 = 8·9,157 + 1, so every epoch would otherwise
end with a batch of one image, where the batch std is undefined and every GNPlus output turns NaN
(very likely the "gradient explosion" the GN paper reports for SVHN at batch 8, §5.2, Table 4). With
`drop_last: false` such a run is refused at start-up for every norm that uses batch statistics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datamodules.base import ImageDataModule

SPLIT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N×3×32×32, labels 0..9) of one SVHN `*_32x32.mat` file."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(str(path), variable_names=("X", "y"))
        images, labels = mat["X"], np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except (MatReadError, ValueError, TypeError, KeyError, OSError, NotImplementedError) as error:
        raise ValueError(f"{path} is not an SVHN .mat file ({type(error).__name__}: {error}); "
                         "delete it and download again") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3) \
            or len(labels) != images.shape[3]:
        raise ValueError(f"{path} holds X {images.dtype} {images.shape} and {labels.shape} labels; "
                         "expected uint8 32×32×3×N and N labels")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ValueError(f"{path} has labels {labels.min()}..{labels.max()}, expected 1..10")
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels % 10


class SVHNDataModule(ImageDataModule):
    name = "svhn"
    num_classes = 10
    in_channels = 3
    image_size = 32
    # Per channel over the 73,257 train images' pixels (/255), as published with DeepCore
    # (PatrickZH/DeepCore, deepcore/datasets/svhn.py); `python -m datamodules.stats svhn DIR`
    # recomputes them. The GN paper's code normalized with 0.5 / 0.5.
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)

    def __init__(self, use_extra: bool = False, **kwargs):
        """
        Args:
            use_extra: train on train + extra (604,388 images) instead of train only.
            (the others: see `ImageDataModule`)
        """
        super().__init__(**kwargs)
        self.use_extra = use_extra

    def _splits_needed(self) -> list[str]:
        return ["train", "test"] + (["extra"] if self.use_extra else [])

    def _missing(self) -> list[str]:
        names = [SPLIT_FILES[split] for split in self._splits_needed()]
        return [name for name in names if not (Path(self.data_dir) / name).is_file()]

    def prepare_data(self) -> None:
        if not self._missing() or not self.may_download:
            return
        import torchvision

        self.try_download(lambda: [torchvision.datasets.SVHN(self.data_dir, split=s, download=True)
                                   for s in self._splits_needed()])

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        missing = self._missing()
        if missing:
            raise FileNotFoundError(
                f"svhn: {self.data_dir} lacks {', '.join(missing)} (expected "
                f"{', '.join(SPLIT_FILES[s] for s in self._splits_needed())}); {self.download_note()}; "
                f"or download them from http://ufldl.stanford.edu/housenumbers/ into {self.data_dir}")
        self.data_source = str(Path(self.data_dir).resolve())
        splits = [s for s in self._splits_needed() if (s == "test") != train]
        parts = [read_svhn_mat(Path(self.data_dir) / SPLIT_FILES[s]) for s in splits]
        return (torch.from_numpy(np.concatenate([p[0] for p in parts])),
                torch.from_numpy(np.concatenate([p[1] for p in parts])))
