"""``last.ckpt``, written often and atomically, so that a run killed at any moment can be resumed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from zoo.distributed import raise_from_rank_zero
from zoo.errors import DISK_FULL, write_failure
from zoo.files import PARTIAL

__all__ = ["LastCheckpoint"]


class LastCheckpoint(Checkpoint):
    """Save the full training state to ``dirpath/last.ckpt`` every ``every_n_train_steps`` and at epoch ends.

    The file is written beside its final name and renamed over it, so a process killed mid-write (SIGKILL,
    out of memory, a pre-empted node) leaves the previous ``last.ckpt`` intact. A write that fails (a full disk,
    a quota, a folder gone read-only) removes its partial file, keeps the previous ``last.ckpt``, and stops the
    run on every rank with a :class:`~zoo.errors.WriteError` saying so. With the in-memory loaders,
    which save their position in the epoch, resuming from a mid-epoch ``last.ckpt`` ends with the same
    weights as a run that was never interrupted.

    Args:
        dirpath: the run folder.
        every_n_train_steps: save after every this many optimiser steps (0: only at the end of epochs).
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | Path, every_n_train_steps: int = 200) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        #: the global step of the last ``last.ckpt`` this process wrote (None: none yet)
        self.saved_step: int | None = None

    @property
    def path(self) -> Path:
        """Where ``last.ckpt`` is written."""
        return self.dirpath / self.FILENAME

    @property
    def run_folder(self) -> Path:
        """The run folder, where the figures go too (:func:`zoo.figures.saving.run_folder`)."""
        return self.dirpath

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint atomically (all ranks call this; rank zero writes).

        Raises:
            WriteError: on every rank, when rank zero could not write it; the previous ``last.ckpt`` is kept.
        """
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        partial = self.path.with_name(self.FILENAME + PARTIAL)
        failure: str | None = None
        try:
            trainer.save_checkpoint(partial, weights_only=False)
        except OSError as error:  # only rank zero writes, so only rank zero gets here
            failure = self._failure(error)
            # the other ranks wait in the barrier that ends Trainer.save_checkpoint: meet them there
            trainer.strategy.barrier("Trainer.save_checkpoint")
        except BaseException:  # stopped at once (a second Ctrl-C) mid-write
            partial.unlink(missing_ok=True)
            raise
        if failure is not None:
            partial.unlink(missing_ok=True)
        raise_from_rank_zero(trainer, failure)
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        self.saved_step = trainer.global_step

    def _failure(self, error: OSError) -> str:
        """One line on a failed write: what failed, and what is left."""
        full = error.errno in DISK_FULL
        what = write_failure(error)
        if not self.path.is_file():
            return f"{what} writing {self.path}; there is no last.ckpt yet"
        step = f" (step {self.saved_step})" if self.saved_step is not None else ""
        then = (
            "free some space, then resume from it"
            if full
            else "resume from it once the folder can be written"
        )
        return f"{what} writing {self.path}; the previous last.ckpt{step} is intact: {then}"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Save every ``every_n_train_steps`` steps."""
        if self.every_n_train_steps > 0 and trainer.global_step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save at the end of every epoch, after validation."""
        self.save(trainer)

    def state_dict(self) -> dict[str, Any]:
        """Where the checkpoints go, recorded in each checkpoint."""
        return {"dirpath": str(self.dirpath)}
