"""LightningModules, one per task, sharing :class:`zoo.tasks.base.BaseTask`."""

from zoo.tasks.base import BaseTask
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.schedules import WarmupCosine, WarmupMultiStep

__all__ = ["BaseTask", "ClassificationTask", "WarmupCosine", "WarmupMultiStep"]
