"""The confusion matrix of the validation and test sets, drawn with the class names, from every rank's data."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from zoo.callbacks.figures import EvaluationFigure, scored_labels
from zoo.figures.drawing import confusion_image
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.tasks.base import datamodule_of
from zoo.tasks.data import class_names

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix(EvaluationFigure):
    """Count, over a whole validation or test epoch, how often each class is predicted as each other class.

    The predictions are the ``logits`` and the truth the ``target`` that the task's ``validation_step`` and
    ``test_step`` return (:class:`~zoo.tasks.outputs.ClassificationOutputs`; the network is not run again), as
    :class:`~zoo.tasks.ClassificationTask` and :class:`~zoo.tasks.LocalizationTask` do. The counts are a
    torchmetrics ``MulticlassConfusionMatrix``, summed over all ranks under DDP; rank zero draws them
    (``val/confusion``, ``test/confusion``; see :mod:`zoo.figures.saving`). Class names come from the
    DataModule's ``classes``.

    Args:
        every_n_epochs: during a fit, draw every this many epochs (and at the last); validation and test runs
            on their own always draw.

    Attributes:
        matrix: the last counts computed, ``(K, K)`` on the CPU, ``matrix[true, predicted]``; None before.
    """

    def __init__(self, every_n_epochs: int = EVERY_N_EPOCHS) -> None:
        self.every_n_epochs = every_n_epochs
        self.matrix: Tensor | None = None
        self._metric: MulticlassConfusionMatrix | None = None
        self._names: list[str] = []
        self._active = False
        self._unread = 0

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        if not should_draw(trainer, self.every_n_epochs):
            return
        names = class_names(pl_module, datamodule_of(trainer))
        if names is None:
            rank_zero_warn("ConfusionMatrix: the task has no num_classes; no confusion matrix is drawn")
            return
        if self._metric is None or self._metric.num_classes != len(names):
            self._metric = MulticlassConfusionMatrix(len(names))
        self._metric = self._metric.to(pl_module.device)
        self._metric.reset()
        self._names, self._active, self._unread = names, True, 0

    def _batch(self, outputs: Any, batch: Any) -> None:
        if not self._active or self._metric is None:
            return
        pair = scored_labels(outputs, len(self._names))
        if pair is None:
            self._unread += 1
            return
        logits, target = pair
        self._metric.update(logits.argmax(dim=1), target)

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active or self._metric is None:
            return
        self._active = False
        self.matrix = self._metric.compute().cpu()  # every rank takes part: it sums the counts of all of them
        self._metric.reset()
        if self._unread:
            rank_zero_warn(
                f"ConfusionMatrix: the steps of {self._unread} batches returned no logits and target "
                "(zoo.tasks.outputs) and were left out"
            )
        if trainer.is_global_zero:
            save_figure(trainer, confusion_image(self.matrix, self._names), f"{stage}/confusion")
