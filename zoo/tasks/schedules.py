"""Learning-rate schedules that follow every optimiser step and span the whole run, however long it is.

Recipes name them under ``lr_scheduler:``. The run's length is not known when the recipe is read (it depends on
``--trainer.max_epochs`` and the data), so the task tells the schedule its total number of steps when training
starts (:meth:`BaseTask.on_train_start <zoo.tasks.base.BaseTask.on_train_start>`).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupCosine"]


class WarmupCosine(LRScheduler):
    """Linear warm-up from 0, then cosine decay to ``final_fraction`` of the base rate, by optimiser step.

    Args:
        optimizer: the optimiser whose rates it sets.
        warmup: fraction of the run spent warming up (0.0 to 1.0).
        final_fraction: the rate at the last step, as a fraction of the base rate.
        total_steps: the run's optimiser steps; set by the task at the start of training when left None.
    """

    #: stepped after every optimiser step, not every epoch
    interval: ClassVar[Literal["step", "epoch"]] = "step"

    def __init__(
        self,
        optimizer: Optimizer,
        warmup: float = 0.0,
        final_fraction: float = 0.0,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {warmup}")
        self.warmup, self.final_fraction, self.total_steps = warmup, final_fraction, total_steps
        super().__init__(optimizer, last_epoch)

    def set_total_steps(self, total_steps: int) -> None:
        """Fix the length of the run in optimiser steps."""
        self.total_steps = max(1, int(total_steps))

    def factor(self, step: int) -> float:
        """The multiple of the base rate used at ``step``."""
        total = self.total_steps or 1
        warm = round(self.warmup * total)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Rates for the current step, one per parameter group."""
        return [float(base) * self.factor(self.last_epoch) for base in self.base_lrs]
