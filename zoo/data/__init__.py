"""LightningDataModules: the MNIST family and CIFAR held in memory, your own image folders, content photos, and
boxes and masks (synthetic shapes, VOC, COCO-format json)."""

from zoo.data.base import InMemoryDataModule, InMemoryLoader, ShardSampler
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from zoo.data.coco import COCODetectionDataModule
from zoo.data.folder import FolderDataModule
from zoo.data.idx import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from zoo.data.images import ImagesDataModule
from zoo.data.shapes import ShapesDataModule
from zoo.data.voc import VOC_CLASSES, VOCDetectionDataModule, VOCSegmentationDataModule

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
    "VOCDetectionDataModule",
    "VOCSegmentationDataModule",
]
