"""The fit-time model summary without the task's metric modules: the network's layers only."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary
from torchmetrics import Metric, MetricCollection

__all__ = ["NetworkSummary"]


class NetworkSummary(RichModelSummary):
    """Lightning's Rich model summary, leaving out torchmetrics modules and everything under them.

    A task's metrics (``train_metrics``, ``val_metrics``, ``test_metrics``, ``class_accuracy``) are modules so that
    they move to the device with it, but they hold no parameters: listed, they bury the network's layers under
    rows of accuracies. Tasks put this summary in the place of the trainer's
    (:meth:`zoo.tasks.BaseTask.configure_callbacks`).
    """

    def _summary(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Any:
        summary = super()._summary(trainer, pl_module)
        metrics = [name for name, m in pl_module.named_modules() if isinstance(m, Metric | MetricCollection)]
        # the layers' rows, their count and their train/eval modes are all read from this table
        summary._layer_summary = {
            name: layer
            for name, layer in summary._layer_summary.items()
            if not any(name == metric or name.startswith(f"{metric}.") for metric in metrics)
        }
        return summary
