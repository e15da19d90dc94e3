"""Images with their true and predicted labels, and the most confident mistakes of the epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from PIL import Image
from torch import Tensor

from zoo.callbacks.drawing import IMAGE_TILE, captioned_grid, display_images, to_tiles
from zoo.callbacks.figures import (
    EVERY_N_EPOCHS,
    EvaluationFigure,
    class_names,
    input_stats,
    save_figure,
    should_draw,
)
from zoo.callbacks.layers import OutputTap, labelled_logits

__all__ = ["PredictionGrid", "prediction_figure"]

#: tiles per row of the grids
COLUMNS = 8


def prediction_figure(
    images: Tensor,
    labels: Tensor,
    probabilities: Tensor,
    names: list[str],
    *,
    mean: Tensor | None = None,
    std: Tensor | None = None,
) -> Image.Image:
    """A grid of images, each captioned with its true class and the predicted one (green when right, red when
    wrong) with its probability.

    Args:
        images: network inputs ``(B, C, H, W)``.
        labels: true classes ``(B,)``.
        probabilities: class probabilities ``(B, K)``.
        names: the ``K`` class names.
        mean: per-channel mean the inputs were normalised with, to show them as they were; or None.
        std: per-channel standard deviation, or None.
    """
    confidence, predicted = probabilities.float().cpu().max(dim=1)
    labels = labels.cpu()
    captions = [
        (f"true: {names[int(t)]}", f"{names[int(p)]} {float(c):.0%}")
        for t, p, c in zip(labels, predicted, confidence, strict=True)
    ]
    wrong = (predicted != labels).tolist()
    tiles = to_tiles(display_images(images, mean, std), IMAGE_TILE)
    return captioned_grid(tiles, captions, min(COLUMNS, len(captions)), wrong=wrong)


class PredictionGrid(EvaluationFigure):
    """Draw the first ``num_images`` validation (or test) images with their predictions, and the
    ``num_mistakes`` wrong predictions made with the highest confidence over the whole epoch.

    Like :class:`~zoo.callbacks.ConfusionMatrix` it reads the logits the task computes in its own step (no extra
    forward pass). Figures ``val/predictions`` and ``val/mistakes`` (``test/...`` at test). Under DDP both come
    from rank zero's share of the data: a picture of examples needs no exact count, unlike the confusion matrix.

    Args:
        num_images: images in the prediction grid (the same images every epoch: the evaluation order is fixed).
        num_mistakes: most confident mistakes to show.
        every_n_epochs: during a fit, draw every this many epochs (and at the last).
    """

    def __init__(
        self, num_images: int = 16, num_mistakes: int = 16, every_n_epochs: int = EVERY_N_EPOCHS
    ) -> None:
        self.num_images, self.num_mistakes, self.every_n_epochs = num_images, num_mistakes, every_n_epochs
        self._tap = OutputTap()
        self._active = False
        self._names: list[str] = []
        self._shown: list[tuple[Tensor, Tensor, Tensor]] = []  # (images, labels, probabilities) of the grid
        self._worst: list[Tensor] = []  # confidence, images, labels, probabilities of the worst mistakes

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = False
        if not trainer.is_global_zero or not should_draw(trainer, self.every_n_epochs):
            return
        names = class_names(pl_module, getattr(trainer, "datamodule", None))
        if names is None:
            return
        self._names, self._shown, self._worst, self._active = names, [], [], True
        self._tap.attach(pl_module)

    def _batch(self, batch: Any) -> None:
        if not self._active:
            return
        pair = labelled_logits(self._tap, batch, len(self._names))
        if pair is None:
            return
        logits, labels = pair
        images, probabilities = batch[0].detach(), logits.float().softmax(dim=1)
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
        self._tap.detach()
        self._active = False
        mean, std = input_stats(getattr(trainer, "datamodule", None))
        if self._shown:
            images, labels, probabilities = (torch.cat(parts) for parts in zip(*self._shown, strict=True))
            figure = prediction_figure(images, labels, probabilities, self._names, mean=mean, std=std)
            save_figure(trainer, figure, f"{stage}/predictions")
        if self._worst:
            _, images, labels, probabilities = self._worst
            figure = prediction_figure(images, labels, probabilities, self._names, mean=mean, std=std)
            save_figure(trainer, figure, f"{stage}/mistakes")
        self._shown, self._worst = [], []
