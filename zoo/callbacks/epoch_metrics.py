"""``metrics.csv``: the run's curves, one row per training epoch, in the run folder whatever the loggers."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from torch import Tensor

from zoo.callbacks.last_checkpoint import LastCheckpoint
from zoo.distributed import raise_from_rank_zero
from zoo.errors import write_failure
from zoo.files import replaced

__all__ = ["EpochMetrics"]

#: the columns every row starts with
_INDEX = ["epoch", "step"]


class EpochMetrics(Checkpoint):
    """Write a row to ``dirpath/metrics.csv`` at the end of every training epoch, on rank zero.

    A row holds ``epoch`` (counted from 0), ``step`` (optimiser steps so far), every scalar the task logged for the
    epoch (``train_loss_epoch``, ``val_acc``, ...: ``trainer.callback_metrics`` without the per-step ``*_step``
    values) and ``lr``, the learning rate of the epoch's last step (first optimiser, first parameter group). A
    metric not computed this epoch (validation every other epoch) is left empty rather than repeated.

    Rows are appended as they come. A metric that first appears in a later epoch rewrites the file, by renaming a
    new one over it, with the wider header (earlier rows leave it empty). A resumed run appends to the same file:
    rows of the epoch it resumes at and later ones, written before it was stopped, are replaced, so no epoch
    appears twice.

    A row is written whole or not at all: a write that fails (a full disk) leaves the file as it was and stops the
    run on every rank with a :class:`~zoo.errors.WriteError` naming the file.

    A :class:`~lightning.pytorch.callbacks.Checkpoint` only so that Lightning calls it after the task's
    ``on_train_epoch_end``, which logs the training metrics (other callbacks are called before it); it saves no
    weights. Put it before :class:`~zoo.callbacks.LastCheckpoint`, so that a run stopped between the two rewrites
    the row rather than missing it.

    Args:
        dirpath: the run folder.
    """

    FILENAME = "metrics.csv"

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._rows: list[dict[str, str]] | None = None  # the file's rows, read on the first write
        self._fields: list[str] = []
        self._seen: dict[str, Tensor] = {}  # the values written last: Lightning keeps stale ones
        self._lr: float | None = None

    @property
    def path(self) -> Path:
        """Where ``metrics.csv`` is written."""
        return self.dirpath / self.FILENAME

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Note the learning rate this step trains with (an epoch-wise schedule has stepped by the epoch's end)."""
        if trainer.optimizers:
            self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the epoch's row (rank zero writes; every rank calls this).

        Raises:
            WriteError: on every rank, when the row could not be written; the file is left as it was.
        """
        failure: str | None = None
        if trainer.is_global_zero:
            try:
                self._write(self._row(trainer))
            except OSError as error:
                failure = self._failure(error)
        raise_from_rank_zero(trainer, failure)

    def _failure(self, error: OSError) -> str:
        """One line on a failed write: what failed, and what is left to resume from."""
        then = (
            f"free some space, then resume from {LastCheckpoint.FILENAME}"
            if (self.dirpath / LastCheckpoint.FILENAME).is_file()
            else f"free some space, then start the run again (there is no {LastCheckpoint.FILENAME} yet)"
        )
        return f"{write_failure(error)} writing {self.path}; its earlier rows are intact: {then}"

    def _row(self, trainer: L.Trainer) -> dict[str, str]:
        metrics = {
            name: value
            for name, value in trainer.callback_metrics.items()
            if not name.endswith("_step") and isinstance(value, Tensor) and value.numel() == 1
        }
        row = {"epoch": str(trainer.current_epoch), "step": str(trainer.global_step)}
        row.update({name: str(float(v)) for name, v in metrics.items() if self._seen.get(name) is not v})
        if self._lr is not None:
            row["lr"] = str(self._lr)
        self._seen = metrics
        return row

    def _write(self, row: Mapping[str, str]) -> None:
        if self._rows is None:
            self._rows, self._fields = _read(self.path)
        epoch, written = int(row["epoch"]), self._rows
        kept = [r for r in written if int(r["epoch"]) < epoch]
        self._rows = [*kept, dict(row)]
        widened = not set(row) <= set(self._fields)
        if widened:
            self._fields = [*_INDEX, *sorted((set(self._fields) | set(row)) - set(_INDEX))]
        if widened or len(kept) < len(written) or not self.path.exists():
            self._rewrite()
        else:
            size = self.path.stat().st_size
            try:
                with self.path.open("a", newline="") as file:
                    csv.DictWriter(file, fieldnames=self._fields, restval="").writerow(row)
            except OSError:
                os.truncate(self.path, size)  # no half row: shortening a file needs no space
                raise

    def _rewrite(self) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with replaced(self.path) as partial, partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self._fields, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self._rows or [])


def _read(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The rows and header of an existing ``metrics.csv`` (none for a new run)."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = [row for row in reader if (row.get("epoch") or "").isdigit()]
        return rows, list(reader.fieldnames or [])
