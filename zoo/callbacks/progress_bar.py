"""The progress bar of every zoo command: Lightning's Rich bar, redrawn a few times a second, not after every batch.

Lightning's :class:`~lightning.pytorch.callbacks.RichProgressBar` updates its bars and gathers the metrics it
shows (``trainer.progress_bar_metrics``) after every batch, and Rich redraws the terminal from a thread of its own
100 times a second, both taking time from training (``benchmarks/overhead.py`` measures it: its ``bar`` arms). On
a GPU, reading metrics logged with ``prog_bar=True`` after every batch also waits for the device each time.
Redrawn ``refresh_rate`` times a second (and after the last batch of every loop), the bar looks the same to a
person and costs next to nothing.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["TimedProgressBar"]


class TimedProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` redrawn at most ``refresh_rate`` times a second.

    Args:
        refresh_rate: redraws a second, by Rich's own thread and after batches alike (0 hides the bar, as
            Lightning's does).
        **kwargs: passed to :class:`~lightning.pytorch.callbacks.RichProgressBar` (``leave``, ``theme``, ...).
    """

    def __init__(self, refresh_rate: int = 4, **kwargs: Any) -> None:
        if not (isinstance(refresh_rate, int) and refresh_rate >= 0):
            raise ValueError(
                f"refresh_rate must be a whole number of redraws a second (0 or more), got {refresh_rate}"
            )
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        #: the least time between two redraws after batches, in seconds
        self.interval = 1 / refresh_rate if refresh_rate else math.inf
        self._drawn = -math.inf

    def _due(self, batch_idx: int, total: float) -> bool:
        """Whether the batch that just ended is drawn: the last of its loop, or ``interval`` after the last drawn."""
        now = time.monotonic()
        if batch_idx + 1 < total and now - self._drawn < self.interval:
            return False
        self._drawn = now
        return True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Redraw the training bar and its metrics when due."""
        if self._due(batch_idx, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _evaluation_batch_end(
        self, hook: str, total: float, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        """Run Lightning's ``hook`` (a validation, test or prediction batch's end) when a redraw is due."""
        batch_idx = args[2]
        if self._due(batch_idx, total):
            getattr(super(), hook)(trainer, pl_module, *args)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Redraw the validation (or sanity-check) bar when due."""
        total = self.total_val_batches_current_dataloader
        self._evaluation_batch_end("on_validation_batch_end", total, trainer, pl_module, *args)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Redraw the test bar when due."""
        total = self.total_test_batches_current_dataloader
        self._evaluation_batch_end("on_test_batch_end", total, trainer, pl_module, *args)

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Redraw the prediction bar when due."""
        total = self.total_predict_batches_current_dataloader
        self._evaluation_batch_end("on_predict_batch_end", total, trainer, pl_module, *args)
