"""Callbacks that tests add to real CLI runs (through an extra ``--config``) to observe or interrupt them."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL the training process just before optimiser step ``step`` (a crash with no clean-up at all).

    A resumed run keeps its callbacks (it runs with the run's own config): with ``marker``, the kill happens once,
    and the file it leaves tells the resumed run not to kill again.
    """

    def __init__(self, step: int, marker: str | None = None) -> None:
        self.step = step
        self.marker = Path(marker) if marker else None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step and not (self.marker and self.marker.exists()):
            if self.marker:
                self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


class RecordOptions(L.Callback):
    """Append, when fitting starts, the options the task and the data actually run with, as a JSON line."""

    def __init__(self, out_file: str) -> None:
        self.out_file = Path(out_file)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        data = trainer.datamodule
        record = {
            "batch_size": data.batch_size,
            "val_size": data.val_size,
            "pad": data.pad,
            "label_smoothing": pl_module.label_smoothing,
            "max_epochs": trainer.max_epochs,
        }
        with open(self.out_file, "a") as file:
            file.write(json.dumps(record) + "\n")


class RecordShards(L.Callback):
    """Write, per rank and epoch, the training-set indices this rank's loader draws and the batches it ran."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "indices": loader.sampler.indices().tolist(),
            "train_size": len(loader.images),
            "batches": self.batches,
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        name = f"rank{trainer.global_rank}-epoch{trainer.current_epoch}.json"
        (self.out_dir / name).write_text(json.dumps(record))


class SignalAtStep(L.Callback):
    """Send this process the signal ``name`` (``SIGINT``, ``SIGTERM``, ``SIGUSR1``) just before optimiser step
    ``step``, on the ranks ``ranks`` (all by default); with ``marker``, once per rank, as :class:`KillAtStep`."""

    def __init__(
        self, step: int, name: str, marker: str | None = None, ranks: list[int] | None = None
    ) -> None:
        self.step, self.signum = step, signal.Signals[name]
        self.marker, self.ranks = marker, ranks

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        elsewhere = self.ranks is not None and trainer.global_rank not in self.ranks
        if trainer.global_step != self.step or elsewhere:
            return
        marker = Path(f"{self.marker}-rank{trainer.global_rank}") if self.marker else None
        if marker is None or not marker.exists():
            if marker is not None:
                marker.write_text("signalled")
            os.kill(os.getpid(), self.signum)


class FullDiskAt(L.Callback):
    """Make the ``nth`` write of ``last.ckpt`` fail as on a full disk: part of the file written, then ``ENOSPC``;
    with ``marker``, in one run only, as :class:`KillAtStep`."""

    def __init__(self, nth: int, marker: str | None = None) -> None:
        self.nth, self.writes = nth, 0
        self.marker = Path(marker) if marker else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def save_or_fail(checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            if str(path).endswith("last.ckpt.partial"):
                self.writes += 1
                if self.writes == self.nth and not (self.marker and self.marker.exists()):
                    if self.marker:
                        self.marker.write_text("failed")
                    Path(path).write_bytes(b"PK\x03\x04" + bytes(4096))  # what fitted before the disk filled
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            save(checkpoint, path, storage_options)

        io.save_checkpoint = save_or_fail  # type: ignore[method-assign]


class FullDiskOn(L.Callback):
    """Make the first write of the checkpoint ``name`` (``best.ckpt``) fail as on a full disk, under zoo's atomic
    writes (:class:`zoo.callbacks.AtomicCheckpointIO`): part of the file written beside its name, then ``ENOSPC``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        inner = trainer.strategy.checkpoint_io.inner  # type: ignore[attr-defined]
        save = inner.save_checkpoint

        def save_or_fail(checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            if Path(path).name == f"{self.name}.partial":
                Path(path).write_bytes(b"PK\x03\x04" + bytes(4096))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            save(checkpoint, path, storage_options)

        inner.save_checkpoint = save_or_fail


class SlowToStop(L.Callback):
    """Take ``seconds`` longer to stop on rank zero after an error, as finishing a W&B run does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if trainer.is_global_zero:
            time.sleep(self.seconds)
