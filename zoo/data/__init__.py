"""LightningDataModules: the MNIST family and CIFAR held in memory, and your own image folders."""

from zoo.data.base import InMemoryDataModule, InMemoryLoader, ShardSampler
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from zoo.data.folder import FolderDataModule
from zoo.data.idx import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "FashionMNISTDataModule",
    "FolderDataModule",
    "InMemoryDataModule",
    "InMemoryLoader",
    "KMNISTDataModule",
    "MNISTDataModule",
    "ShardSampler",
]
