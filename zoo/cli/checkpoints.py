"""Checkpoint safety: a checkpoint is opened only if it loads without unpickling code.

Lightning and torch read checkpoints with ``torch.load``; zoo checks every checkpoint a user names with
``weights_only=True`` first, so a file holding pickled code (or no checkpoint at all) is refused in one line
before anything else reads it.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError

__all__ = ["RUN_CONFIG", "checked_checkpoint", "run_config_of"]

#: the resolved config a fit writes into its run folder
RUN_CONFIG = "config.yaml"


def checked_checkpoint(path: str | Path) -> Path:
    """``path``, once it is known to exist and to load with ``torch.load(weights_only=True)``.

    Raises:
        ZooError: the file is missing, truncated, not a checkpoint, or needs to unpickle code.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # truncated zip, foreign pickle, disallowed global: all mean "not ours"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"checkpoint {path} cannot be loaded safely: {first}") from error
    return path


def run_config_of(checkpoint: str | Path | None) -> Path | None:
    """The ``config.yaml`` of the run folder holding ``checkpoint``, or None when it is not in one."""
    if checkpoint is None:
        return None
    config = Path(checkpoint).expanduser().parent / RUN_CONFIG
    return config if config.is_file() else None
