"""One LightningDataModule per data set family, on the shared base in `base.py`.

Registered by name (`DATAMODULES`); the CLI takes them as `data: {class_path: ...}` or the short
class name, e.g. `--data CIFAR10DataModule`.
"""
from datamodules.base import ImageDataModule
from datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from datamodules.mnist import FashionMNISTDataModule, MNISTDataModule
from datamodules.svhn import SVHNDataModule

DATAMODULES: dict[str, type[ImageDataModule]] = {
    cls.name: cls
    for cls in (CIFAR10DataModule, CIFAR100DataModule, SVHNDataModule, MNISTDataModule,
                FashionMNISTDataModule)
}

__all__ = ["DATAMODULES", "CIFAR10DataModule", "CIFAR100DataModule", "FashionMNISTDataModule",
           "ImageDataModule", "MNISTDataModule", "SVHNDataModule"]
