"""LightningDataModules: the MNIST family and CIFAR held in memory, your own image folders, content photos."""

from zoo.data.base import InMemoryDataModule, InMemoryLoader, ShardSampler
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from zoo.data.folder import FolderDataModule
from zoo.data.idx import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from zoo.data.images import ImagesDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "FashionMNISTDataModule",
    "FolderDataModule",
    "ImagesDataModule",
    "InMemoryDataModule",
    "InMemoryLoader",
    "KMNISTDataModule",
    "MNISTDataModule",
    "ShardSampler",
]
