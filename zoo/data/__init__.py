"""LightningDataModules: the MNIST family and CIFAR held in memory, your own image folders, content photos, and
boxes and masks (synthetic shapes, VOC, COCO-format json).

Every DataModule is a :class:`ZooDataModule`: what tasks and callbacks may read from data (its task
:data:`TaskKind` s, classes, image shape, normalisation) and its one loader factory, ``dataloader(split)``.
File formats are read by :mod:`zoo.data.readers`.
"""

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from zoo.data.coco import COCODetectionDataModule
from zoo.data.folder import FolderDataModule
from zoo.data.idx import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from zoo.data.images import ImagesDataModule
from zoo.data.memory import InMemoryDataModule, InMemoryLoader, ShardSampler
from zoo.data.readers.voc import VOC_CLASSES
from zoo.data.shapes import ShapesDataModule
from zoo.data.voc import VOCDetectionDataModule, VOCSegmentationDataModule

__all__ = [
    "VOC_CLASSES",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "COCODetectionDataModule",
    "FashionMNISTDataModule",
    "FolderDataModule",
    "ImagesDataModule",
    "InMemoryDataModule",
    "InMemoryLoader",
    "KMNISTDataModule",
    "MNISTDataModule",
    "ShapesDataModule",
    "ShardSampler",
    "TaskKind",
    "VOCDetectionDataModule",
    "VOCSegmentationDataModule",
    "ZooDataModule",
]
