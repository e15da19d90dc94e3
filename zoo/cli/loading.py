"""A trained task and its data, from a checkpoint, for the commands that look inside it (``visualize``, ``embed``).

The checkpoint is read as ``zoo test`` reads it: checked first (:mod:`zoo.cli.checkpoints`), configured by the
``config.yaml`` of its run folder or by ``--recipe``, with ``--key value`` overrides on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.cli.checkpoints import checked_checkpoint, run_config_of
from zoo.cli.lightning import ZooCLI
from zoo.cli.recipes import find_recipe, read_recipe
from zoo.errors import ZooError

__all__ = ["InspectionCLI", "load_trained"]


class InspectionCLI(ZooCLI):
    """Instantiates a config's task and data without running anything, and with no logger."""

    command = "test"


def load_trained(
    ckpt_path: str | Path, *, recipe: str | None = None, overrides: Sequence[str] = ()
) -> tuple[Any, Any]:
    """The task of a checkpoint, with its weights, in eval mode on the best device, and its DataModule.

    Args:
        ckpt_path: a checkpoint written by ``zoo fit``.
        recipe: its recipe (name or file), needed when the checkpoint is not in its run folder.
        overrides: ``--key value`` arguments over the config (``["--data.root", "/data"]``).

    Raises:
        ZooError: the checkpoint is missing or unsafe, has no config, or does not fit the config's task.
    """
    checkpoint = checked_checkpoint(ckpt_path)
    if recipe:
        config = find_recipe(recipe)
        read_recipe(config)
        name = config.stem
    else:
        run_config = run_config_of(checkpoint)
        if run_config is None:
            raise ZooError(f"{checkpoint} has no config.yaml beside it; name its recipe with --recipe")
        config, name = run_config, str(read_recipe(run_config).get("recipe") or run_config.parent.parent.name)

    cli = InspectionCLI(["--config", str(config), "--recipe", name, *overrides], run=False)
    task, data = cli.model, cli.datamodule
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        task.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"checkpoint {checkpoint} does not fit the recipe's model: {first}") from error
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task.to(device).eval().requires_grad_(False)
    return task, data
