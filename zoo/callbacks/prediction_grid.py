"""Images with their true and predicted labels, and the most confident mistakes of the epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from zoo.callbacks.figures import EvaluationFigure, scored_labels
from zoo.figures.predictions import prediction_figure
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.tasks.base import datamodule_of
from zoo.tasks.data import class_names, input_stats

__all__ = ["PredictionGrid"]


class PredictionGrid(EvaluationFigure):
    """Draw the first ``num_images`` validation (or test) images with their predictions, and the
    ``num_mistakes`` wrong predictions made with the highest confidence over the whole epoch.

    Like :class:`~zoo.callbacks.ConfusionMatrix` it reads the ``logits`` and ``target`` the task's step returns
    (:mod:`zoo.tasks.outputs`; no extra forward pass), and takes the images from the batch; the drawing is
    :func:`zoo.figures.predictions.prediction_figure`. Figures ``val/predictions`` and ``val/mistakes``
    (``test/...`` at test). Under DDP both come from rank zero's share of the data: a picture of examples needs
    no exact count, unlike the confusion matrix.

    Args:
        num_images: images in the prediction grid (the same images every epoch: the evaluation order is fixed).
        num_mistakes: most confident mistakes to show.
        every_n_epochs: during a fit, draw every this many epochs (and at the last).
    """

    def __init__(
        self, num_images: int = 16, num_mistakes: int = 16, every_n_epochs: int = EVERY_N_EPOCHS
    ) -> None:
        self.num_images, self.num_mistakes, self.every_n_epochs = num_images, num_mistakes, every_n_epochs
        self._active = False
        self._names: list[str] = []
        self._shown: list[tuple[Tensor, Tensor, Tensor]] = []  # (images, labels, probabilities) of the grid
        self._worst: list[Tensor] = []  # confidence, images, labels, probabilities of the worst mistakes

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        if not trainer.is_global_zero or not should_draw(trainer, self.every_n_epochs):
            return
        names = class_names(pl_module, datamodule_of(trainer))
        if names is None:
            return
        self._names, self._shown, self._worst, self._active = names, [], [], True

    def _batch(self, outputs: Any, batch: Any) -> None:
        if not self._active:
            return
        pair = scored_labels(outputs, len(self._names))
        images = batch[0] if isinstance(batch, list | tuple) and batch else None
        if pair is None or not isinstance(images, Tensor) or len(images) != len(pair[1]):
            return
        logits, labels = pair
        images, probabilities = images.detach(), logits.float().softmax(dim=1)
        room = self.num_images - sum(len(part[1]) for part in self._shown)
        if room > 0:
            self._shown.append((images[:room].cpu(), labels[:room].cpu(), probabilities[:room].cpu()))
        confidence, predicted = probabilities.max(dim=1)
        wrong = (predicted != labels).nonzero().flatten()
        if self.num_mistakes <= 0 or len(wrong) == 0:
            return
        candidates = [confidence[wrong], images[wrong], labels[wrong], probabilities[wrong]]
        if self._worst:
            candidates = [torch.cat([old, new]) for old, new in zip(self._worst, candidates, strict=True)]
        keep = candidates[0].topk(min(self.num_mistakes, len(candidates[0]))).indices
        self._worst = [part[keep] for part in candidates]

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active:
            return
        self._active = False
        mean, std = input_stats(datamodule_of(trainer))
        if self._shown:
            images, labels, probabilities = (torch.cat(parts) for parts in zip(*self._shown, strict=True))
            figure = prediction_figure(images, labels, probabilities, self._names, mean=mean, std=std)
            save_figure(trainer, figure, f"{stage}/predictions")
        if self._worst:
            _, images, labels, probabilities = self._worst
            figure = prediction_figure(images, labels, probabilities, self._names, mean=mean, std=std)
            save_figure(trainer, figure, f"{stage}/mistakes")
        self._shown, self._worst = [], []
