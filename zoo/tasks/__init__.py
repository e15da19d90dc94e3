"""LightningModules, one per task, sharing :class:`zoo.tasks.base.BaseTask`."""

from zoo.tasks.autoencoder import AutoencoderTask
from zoo.tasks.base import BaseTask
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.localization import LocalizationTask
from zoo.tasks.schedules import WarmupCosine, WarmupMultiStep
from zoo.tasks.style_transfer import StyleTransferTask

__all__ = [
    "AutoencoderTask",
    "BaseTask",
    "ClassificationTask",
    "LocalizationTask",
    "StyleTransferTask",
    "WarmupCosine",
    "WarmupMultiStep",
]
