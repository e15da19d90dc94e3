"""Checks of the training steps that never stop the device: a non-finite loss, bad data found on the device.

Reading a device value on the host (``loss.item()``, ``bool(tensor)``, ``.cpu()``) waits for every queued kernel:
done on every step, it keeps a GPU idle between steps. :class:`StepChecks` keeps what the steps found where it is,
and the task reads it all in one transfer at a check: on the steps the loggers write (every
``log_every_n_steps``), at the epoch's last batch and before a checkpoint is saved. A NaN loss therefore stops the
run at most one logging interval after it appears, with a message naming the exact step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.errors import DataError, ZooError

__all__ = ["NonFiniteLossError", "StepChecks", "StepPosition"]

#: losses kept one by one before they are stacked into one tensor (a run that never logs keeps a whole epoch)
_STACKED = 256


class NonFiniteLossError(ZooError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass(frozen=True)
class StepPosition:
    """Where a training step is in the run.

    Attributes:
        epoch: the epoch, from 0.
        batch: the batch within the epoch, from 0.
        step: the optimiser steps taken before this batch (Lightning's ``global_step``).
    """

    epoch: int
    batch: int
    step: int


@dataclass(frozen=True)
class _Fault:
    """A data fault a step looked for on the device: ``found`` (0-d bool) and the offending ``value`` (0-d)."""

    index: int  # the step, counted in the steps kept since the last check
    found: Tensor
    value: Tensor
    message: str  # with ``{value}`` where the offending value goes


class StepChecks:
    """The training losses and data faults of the steps since the last check, on their device.

    A step calls :meth:`keep` with its loss (and :meth:`keep_fault` for a fault it looked for); neither reads
    anything on the host. :meth:`check` reads them all at once and raises for the first bad step.
    """

    def __init__(self) -> None:
        self._losses: list[Tensor] = []  # 0-d losses of the latest steps
        self._stacked: list[Tensor] = []  # 1-d runs of earlier ones, _STACKED at a time
        self._positions: list[StepPosition] = []
        self._faults: list[_Fault] = []

    def __len__(self) -> int:
        """The steps kept since the last check."""
        return len(self._positions)

    def keep(self, loss: Tensor, position: StepPosition) -> None:
        """Keep a step's loss (detached, where it is) until the next :meth:`check`."""
        self._losses.append(loss.detach().reshape(()))
        self._positions.append(position)
        if (
            len(self._losses) >= _STACKED
        ):  # one op per _STACKED steps, so that a long window holds few tensors
            self._stacked.append(torch.stack(self._losses).float())
            self._losses = []

    def keep_fault(self, found: Tensor, value: Tensor, message: str) -> None:
        """Note a fault the coming step looked for on the device, to be raised at the next :meth:`check`.

        Args:
            found: 0-d bool, true where the step's data had the fault.
            value: 0-d, the offending value, put in the message.
            message: what is wrong and how to fix it, with ``{value}`` where the value goes.
        """
        self._faults.append(_Fault(len(self._positions), found.detach(), value.detach(), message))

    def check(self) -> Tensor | None:
        """Read the kept steps on the host (one transfer), forget them, and raise for the first bad one.

        Returns:
            The last kept loss, 0-d, in host memory (None when no step was kept): reading it again costs nothing.

        Raises:
            DataError: a step's data had a fault noted by :meth:`keep_fault`.
            NonFiniteLossError: a step's loss was NaN or infinite; the message names its step, epoch and batch,
                and the steps checked.
        """
        positions, faults = self._positions, self._faults
        parts = [*self._stacked, torch.stack(self._losses).float()] if self._losses else list(self._stacked)
        self._losses, self._stacked, self._positions, self._faults = [], [], [], []
        window = (
            f"checked between step {positions[0].step} and step {positions[-1].step}" if positions else ""
        )
        if faults:
            found = torch.stack([f.found for f in faults]).cpu()
            if bool(found.any()):
                first = faults[int(found.to(torch.uint8).argmax())]
                message = first.message.format(value=first.value.cpu().item())
                if first.index < len(positions):  # else a step run outside training_step: no position to name
                    at = positions[first.index]
                    message += f" (step {at.step}, epoch {at.epoch}, batch {at.batch}; {window})"
                raise DataError(message)
        if not positions:
            return None
        host = torch.cat(parts).cpu()
        for position, loss in zip(positions, host.tolist(), strict=True):
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"the training loss became {loss} at step {position.step} (epoch {position.epoch}, batch "
                    f"{position.batch}; {window}); try a lower learning rate"
                )
        return host[-1]
