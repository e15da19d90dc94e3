"""Checkpoint safety: a checkpoint is opened only if it loads without unpickling code.

Lightning and torch read checkpoints with ``torch.load``; zoo checks every checkpoint a user names with
``weights_only=True`` first, so a file holding pickled code (or no checkpoint at all) is refused in one line
before anything else reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["RUN_CONFIG", "check_fits", "checked_checkpoint", "run_config_of"]

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


def check_fits(model: Any, path: str | Path) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit ``model`` (another network or class count).

    Lightning would stop with a state-dict traceback when it loads the checkpoint, after the data is read.

    Raises:
        ZooError: the checkpoint holds no ``state_dict``, or its keys or shapes differ from the model's.
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("state_dict")
    if not isinstance(state, dict):
        raise ZooError(f"checkpoint {path} holds no state_dict: it was not written by zoo fit")
    own = model.state_dict()
    problems = [f"{key} is missing" for key in own if key not in state]
    problems += [f"{key} is not in the model" for key in state if key not in own]
    problems += [
        f"{key} is {tuple(state[key].shape)} in the checkpoint, {tuple(value.shape)} in the model"
        for key, value in own.items()
        if key in state and tuple(state[key].shape) != tuple(value.shape)
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ZooError(
            f"the checkpoint's weights do not fit the configured model: {problems[0]}{more}; give the recipe and "
            f"options it was trained with, or use the config.yaml of its run folder ({path})"
        )
