"""``last.ckpt``, written often and atomically, so that a run killed at any moment can be resumed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

__all__ = ["LastCheckpoint"]


class LastCheckpoint(Checkpoint):
    """Save the full training state to ``dirpath/last.ckpt`` every ``every_n_train_steps`` and at epoch ends.

    The file is written beside its final name and renamed over it, so a process killed mid-write (SIGKILL,
    out of memory, a pre-empted node) leaves the previous ``last.ckpt`` intact. With the in-memory loaders,
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

    @property
    def path(self) -> Path:
        """Where ``last.ckpt`` is written."""
        return self.dirpath / self.FILENAME

    @property
    def run_folder(self) -> Path:
        """The run folder, where the figures go too (:func:`zoo.figures.saving.run_folder`)."""
        return self.dirpath

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint atomically (all ranks call this; rank zero writes)."""
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        partial = self.path.with_name(self.FILENAME + ".partial")
        trainer.save_checkpoint(partial, weights_only=False)
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        trainer.strategy.barrier("zoo_last_checkpoint")

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
