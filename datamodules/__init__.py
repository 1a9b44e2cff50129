"""One LightningDataModule per data set family, on the shared base in `base.py`.

Registered by name (`DATAMODULES`); the CLI takes them as `data: {class_path: ...}` or the short
class name, e.g. `--data FashionMNISTDataModule`.
"""
from datamodules.base import ImageDataModule
from datamodules.mnist import FashionMNISTDataModule, MNISTDataModule

DATAMODULES: dict[str, type[ImageDataModule]] = {
    cls.name: cls for cls in (MNISTDataModule, FashionMNISTDataModule)
}

__all__ = ["DATAMODULES", "FashionMNISTDataModule", "ImageDataModule", "MNISTDataModule"]
