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

__all__ = ["RunSchedule", "WarmupCosine", "WarmupMultiStep", "WarmupPoly"]


class RunSchedule(LRScheduler):
    """A schedule that multiplies the base rates by ``factor(step)``, knowing the run's length in steps.

    Subclasses define :meth:`factor`; the task calls :meth:`set_total_steps` when training starts.
    """

    #: stepped after every optimiser step, not every epoch
    interval: ClassVar[Literal["step", "epoch"]] = "step"
    total_steps: int | None

    def set_total_steps(self, total_steps: int) -> None:
        """Fix the length of the run in optimiser steps, and the current rates with it."""
        self.total_steps = max(1, int(total_steps))
        rates = self.get_lr()  # the rates set at construction did not know the run's length
        for group, rate in zip(self.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def factor(self, step: int) -> float:
        """The multiple of the base rate used at ``step``."""
        raise NotImplementedError

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Rates for the current step, one per parameter group."""
        return [float(base) * self.factor(self.last_epoch) for base in self.base_lrs]


class WarmupCosine(RunSchedule):
    """Linear warm-up from 0, then cosine decay to ``final_fraction`` of the base rate, by optimiser step.

    Args:
        optimizer: the optimiser whose rates it sets.
        warmup: fraction of the run spent warming up (0.0 to 1.0).
        final_fraction: the rate at the last step, as a fraction of the base rate.
        total_steps: the run's optimiser steps; set by the task at the start of training when left None.
    """

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

    def factor(self, step: int) -> float:
        """The multiple of the base rate used at ``step``."""
        total = self.total_steps or 1
        warm = round(self.warmup * total)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupMultiStep(RunSchedule):
    """Step decay at fixed fractions of the run, after an optional warm-up, by optimiser step.

    He et al.'s CIFAR schedule (divide by 10 at 32k and 48k of 64k iterations) is ``milestones=[0.5, 0.75]``;
    their ResNet-110 first trains at a tenth of the rate for about 400 iterations (``warmup=0.006,
    warmup_factor=0.1``, a constant warm-up). torchvision's detection reference rises linearly from 0.001 times
    the rate over the first epoch (``warmup_mode="linear", warmup_factor=0.001``). Fractions keep the shape of
    the schedule when a run is shortened.

    Args:
        optimizer: the optimiser whose rates it sets.
        milestones: fractions of the run (increasing, in (0, 1)) at which the rate is multiplied by ``gamma``.
        gamma: the factor applied at each milestone.
        warmup: fraction of the run spent warming up.
        warmup_factor: the multiple of the base rate during a constant warm-up, or at the first step of a linear one.
        warmup_mode: ``"constant"`` (the whole warm-up at ``warmup_factor``) or ``"linear"`` (from
            ``warmup_factor`` up to 1, as ``torch.optim.lr_scheduler.LinearLR``).
        total_steps: the run's optimiser steps; set by the task at the start of training when left None.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: list[float],
        gamma: float = 0.1,
        warmup: float = 0.0,
        warmup_factor: float = 0.1,
        warmup_mode: Literal["constant", "linear"] = "constant",
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if warmup_mode not in ("constant", "linear"):
            raise ValueError(f"warmup_mode must be constant or linear, got {warmup_mode!r}")
        if any(not 0.0 < m < 1.0 for m in milestones) or sorted(milestones) != list(milestones):
            raise ValueError(f"milestones are increasing fractions of the run in (0, 1), got {milestones}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {warmup}")
        self.milestones, self.gamma = list(milestones), gamma
        self.warmup, self.warmup_factor, self.total_steps = warmup, warmup_factor, total_steps
        self.warmup_mode = warmup_mode
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiple of the base rate used at ``step``."""
        total = self.total_steps or 1
        warmup_steps = round(self.warmup * total)
        if step < warmup_steps:
            if self.warmup_mode == "constant":
                return self.warmup_factor
            return self.warmup_factor + (1.0 - self.warmup_factor) * step / warmup_steps
        passed = sum(step >= round(m * total) for m in self.milestones)
        return float(self.gamma**passed)


class WarmupPoly(RunSchedule):
    """Optional linear warm-up, then polynomial ("poly") decay to zero, by optimiser step.

    The schedule of DeepLab (Chen et al. 2017) and of torchvision's segmentation reference: the rate is
    ``base * (1 - progress) ** power`` with ``power=0.9``, ``progress`` the fraction of the decay done. The
    warm-up (torchvision's ``--lr-warmup-epochs``, none by default) rises linearly from ``warmup_factor`` times
    the base rate, as ``LinearLR`` does, and the decay spans the steps after it.

    Args:
        optimizer: the optimiser whose rates it sets.
        power: the exponent of the decay.
        warmup: fraction of the run spent warming up (0.0 to 1.0).
        warmup_factor: the multiple of the base rate at the first step of the warm-up.
        total_steps: the run's optimiser steps; set by the task at the start of training when left None.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        power: float = 0.9,
        warmup: float = 0.0,
        warmup_factor: float = 0.01,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {warmup}")
        if not 0.0 < warmup_factor <= 1.0:
            raise ValueError(f"warmup_factor is a fraction of the base rate in (0, 1], got {warmup_factor}")
        self.power, self.warmup, self.warmup_factor = power, warmup, warmup_factor
        self.total_steps = total_steps
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiple of the base rate used at ``step``."""
        total = self.total_steps or 1
        warm = round(self.warmup * total)
        if step < warm:
            return self.warmup_factor + (1 - self.warmup_factor) * step / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return float((1 - progress) ** self.power)
