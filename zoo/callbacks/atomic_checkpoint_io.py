"""Every checkpoint a run writes, written whole or not at all: ``best.ckpt`` as ``last.ckpt`` always was.

Lightning writes a checkpoint straight to its final name, so a full disk (or a quota, or a process killed mid-write)
leaves a truncated ``best.ckpt`` where the previous best one was. :class:`AtomicCheckpointIO` writes each file beside
its name and renames it over the old one once it is whole; a write that fails removes the partial file, keeps the
previous one, and stops the run with one line (:class:`~zoo.errors.WriteError`). Only rank zero writes: zoo's command
line has every rank stop with it (:class:`zoo.cli.lightning.ZooTrainer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO

from zoo.errors import WriteError, write_failure
from zoo.files import PARTIAL, replaced

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(CheckpointIO):
    """A :class:`~lightning.fabric.plugins.CheckpointIO` that writes through ``inner`` beside the final name, then
    renames.

    A path that is itself a ``.partial`` file (:class:`~zoo.callbacks.LastCheckpoint` renames its own) is written
    as it is, and a failure is left to its caller as the ``OSError`` it is.

    Args:
        inner: what writes, reads and removes the files (Lightning's ``torch.save``-based one by default).
    """

    def __init__(self, inner: CheckpointIO | None = None) -> None:
        self.inner = inner if inner is not None else TorchCheckpointIO()

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` whole, or leave what was at ``path`` as it was.

        Raises:
            WriteError: the file could not be written (the message says what is left).
        """
        final = Path(path)
        if final.name.endswith(PARTIAL):
            self.inner.save_checkpoint(checkpoint, final, storage_options)
            return
        try:
            with replaced(final) as partial:
                self.inner.save_checkpoint(checkpoint, partial, storage_options)
        except OSError as error:
            what = write_failure(error)
            kept = (
                f"the previous {final.name} is intact"
                if final.is_file()
                else f"no {final.name} was written yet"
            )
            raise WriteError(
                f"{what} writing {final}; {kept}: free some space, then resume from last.ckpt"
            ) from None

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read a checkpoint through ``inner`` (with its own ``map_location`` unless one is given)."""
        options: dict[str, Any] = {"weights_only": weights_only}
        if map_location is not None:
            options["map_location"] = map_location
        return self.inner.load_checkpoint(path, **options)

    def remove_checkpoint(self, path: Any) -> None:
        """Remove a checkpoint through ``inner``."""
        self.inner.remove_checkpoint(path)
