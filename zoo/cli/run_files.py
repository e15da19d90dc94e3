"""The files ``zoo fit`` writes in a run folder besides checkpoints and ``metrics.csv``: ``config.yaml``,
``metrics.json`` and their copies in the W&B run, each written whole or not at all.

A write that fails (a full disk, a quota) keeps what was there and stops the command with one line naming the file
(:class:`~zoo.errors.WriteError`); so does a full disk met anywhere else during a fit (a logger's own files), with
what the run can be resumed from (:func:`full_disk`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger

from zoo.cli.runs import LAST
from zoo.errors import DISK_FULL, WriteError, write_failure
from zoo.files import replaced

__all__ = ["full_disk", "send_to_wandb", "write_whole"]


def write_whole(path: Path, text: str, *, then: str) -> None:
    """Write ``text`` to ``path`` beside its name, then rename it over what was there.

    Args:
        path: the file.
        text: its new contents.
        then: what to do after a failed write, said at the end of the message (``free some space, then ...``).

    Raises:
        WriteError: the file could not be written; what was at ``path`` is kept.
    """
    try:
        with replaced(path) as partial:
            partial.write_text(text)
    except OSError as error:
        kept = f"the previous {path.name} is intact" if path.is_file() else f"no {path.name} was written"
        raise WriteError(f"{write_failure(error)} writing {path}; {kept}; {then}") from None


def send_to_wandb(logger: WandbLogger, run_dir: Path, names: Sequence[str]) -> None:
    """Upload the run folder's ``names`` with the W&B run now, or with ``wandb sync`` for an offline run.

    W&B would link the files into its run's ``files/`` folder; they are copied there instead, so that an offline run
    holds them even when synced from another machine or after the run folder has moved.

    Raises:
        WriteError: a copy could not be written (the run folder's own files are intact).
    """
    run = logger.experiment
    if getattr(run, "disabled", False):  # WANDB_MODE=disabled: no run, and no folder for its files
        return
    files = Path(run.dir)
    for name in names:
        if (run_dir / name).is_file():
            try:
                shutil.copyfile(run_dir / name, files / name)
            except OSError as error:
                (files / name).unlink(missing_ok=True)
                raise WriteError(
                    f"{write_failure(error)} writing {files / name}, W&B's copy; the run folder is intact: free some "
                    f"space, then resume from its {LAST} to send it again"
                ) from None
            run.save(str(files / name), base_path=str(files), policy="now")


def full_disk(error: BaseException, run_dir: Path | None) -> WriteError | None:
    """The one line for a fit stopped by a full disk somewhere zoo does not write itself (a logger's files), or None
    for any other error.

    Args:
        error: what stopped the fit.
        run_dir: the run folder, once chosen.
    """
    if not isinstance(error, OSError) or error.errno not in DISK_FULL:
        return None
    # a copy names its source and its destination: the destination is where the space ran out
    written = error.filename2 or error.filename
    where = ""
    if written is not None:
        where = f" writing {os.fsdecode(written)}"
    elif run_dir is not None:  # a write of an open file names none: say where the run writes
        where = f" writing into {run_dir}"
    last = run_dir / LAST if run_dir is not None else None
    left = (
        f"{last} is intact: free some space, then resume from it"
        if last is not None and last.is_file()
        else f"there is no {LAST} yet: free some space, then start the run again"
    )
    return WriteError(f"{write_failure(error)}{where}; {left}")
