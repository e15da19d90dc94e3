"""LightningModules, one per task, sharing :class:`zoo.tasks.base.BaseTask`."""

from zoo.tasks.autoencoder import AutoencoderTask
from zoo.tasks.base import BaseTask
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.detection import DetectionTask
from zoo.tasks.localization import LocalizationTask
from zoo.tasks.schedules import WarmupCosine, WarmupMultiStep, WarmupPoly
from zoo.tasks.segmentation import SegmentationTask
from zoo.tasks.style_transfer import StyleTransferTask

__all__ = [
    "AutoencoderTask",
    "BaseTask",
    "ClassificationTask",
    "DetectionTask",
    "LocalizationTask",
    "SegmentationTask",
    "StyleTransferTask",
    "WarmupCosine",
    "WarmupMultiStep",
    "WarmupPoly",
]
