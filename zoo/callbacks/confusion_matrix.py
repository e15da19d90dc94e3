"""The confusion matrix of the validation and test sets, drawn with the class names, from every rank's data."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from zoo.callbacks.drawing import confusion_image
from zoo.callbacks.figures import EVERY_N_EPOCHS, EvaluationFigure, class_names, save_figure, should_draw
from zoo.callbacks.layers import OutputTap, labelled_logits

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix(EvaluationFigure):
    """Count, over a whole validation or test epoch, how often each class is predicted as each other class.

    The task's logits are caught as its ``validation_step``/``test_step`` computes them (a forward hook on the
    task: the network is not run again), so the task must return ``(B, num_classes)`` scores from ``forward``
    for batches ``(images, labels)``, as :class:`~zoo.tasks.ClassificationTask` does. The counts are a
    torchmetrics ``MulticlassConfusionMatrix``, summed over all ranks under DDP; rank zero draws them
    (``val/confusion``, ``test/confusion``; see :mod:`zoo.callbacks.figures`). Class names come from the
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
        self._tap = OutputTap()
        self._active = False
        self._unread = 0

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        if not should_draw(trainer, self.every_n_epochs):
            return
        names = class_names(pl_module, getattr(trainer, "datamodule", None))
        if names is None:
            rank_zero_warn("ConfusionMatrix: the task has no num_classes; no confusion matrix is drawn")
            return
        if self._metric is None or self._metric.num_classes != len(names):
            self._metric = MulticlassConfusionMatrix(len(names))
        self._metric = self._metric.to(pl_module.device)
        self._metric.reset()
        self._names, self._active, self._unread = names, True, 0
        self._tap.attach(pl_module)

    def _batch(self, batch: Any) -> None:
        if not self._active or self._metric is None:
            return
        pair = labelled_logits(self._tap, batch, len(self._names))
        if pair is None:
            self._unread += 1
            return
        logits, labels = pair
        self._metric.update(logits.argmax(dim=1), labels)

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active or self._metric is None:
            return
        self._tap.detach()
        self._active = False
        self.matrix = self._metric.compute().cpu()  # every rank takes part: it sums the counts of all of them
        self._metric.reset()
        if self._unread:
            rank_zero_warn(
                f"ConfusionMatrix: {self._unread} batches gave no (logits, labels) and were left out"
            )
        if trainer.is_global_zero:
            save_figure(trainer, confusion_image(self.matrix, self._names), f"{stage}/confusion")
