"""The base of the callbacks that draw a figure from the batches of a validation or test epoch.

They read what the task computed from the outputs its ``validation_step``/``test_step`` returns
(:mod:`zoo.tasks.outputs`), which Lightning hands to ``on_validation_batch_end``/``on_test_batch_end``: no
forward hook, no second pass of the network. Figures are saved by :func:`zoo.figures.saving.save_figure`: a PNG in
the run folder's ``figures/``, and an image in W&B or TensorBoard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from torch import Tensor

__all__ = ["EvaluationFigure", "scored_labels"]


def scored_labels(outputs: Any, num_classes: int) -> tuple[Tensor, Tensor] | None:
    """The ``logits`` ``(B, num_classes)`` and the true classes ``target`` ``(B,)`` of a step's outputs
    (:class:`~zoo.tasks.outputs.ClassificationOutputs`, :class:`~zoo.tasks.outputs.LocalizationOutputs`).

    None when the outputs have no such pair: not a dict, no ``logits`` or ``target``, integer classes missing, or
    not one row of ``num_classes`` scores per class.
    """
    if not isinstance(outputs, Mapping):
        return None
    logits, target = outputs.get("logits"), outputs.get("target")
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        return None
    if target.ndim != 1 or target.is_floating_point() or logits.shape != (len(target), num_classes):
        return None
    return logits, target


class EvaluationFigure(L.Callback):
    """A figure drawn from the batches of a validation or test epoch: the hooks of both stages, routed to
    :meth:`_start` (the epoch begins), :meth:`_batch` (a batch was evaluated) and :meth:`_end` (draw)."""

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Decide whether this epoch draws, and reset what the previous one collected."""
        raise NotImplementedError

    def _batch(self, outputs: Any, batch: Any) -> None:
        """Collect what the figure needs from one evaluated batch: the step's ``outputs`` and the ``batch``."""
        raise NotImplementedError

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Draw the figure of ``stage`` (``"val"`` or ``"test"``) and save it."""
        raise NotImplementedError

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start collecting, when this epoch draws."""
        self._start(trainer, pl_module)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        """Collect from the batch's outputs."""
        self._batch(outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the validation figure."""
        self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start collecting."""
        self._start(trainer, pl_module)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        """Collect from the batch's outputs."""
        self._batch(outputs, batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the test figure."""
        self._end(trainer, pl_module, "test")
