"""From a command line to LightningCLI's arguments: ``--recipe`` becomes a config file read first.

``--recipe NAME|PATH`` puts the recipe's file before every other argument, so that each ``--key value``
overrides it. Without ``--recipe``, ``validate``, ``test`` and ``predict`` read the ``config.yaml`` of the run
folder holding ``--ckpt_path``. The recipe's name stays in the config (``recipe:``), which names the run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoo.cli.checkpoints import checked_checkpoint, run_config_of
from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import token_key, token_value
from zoo.cli.recipes import describe_recipes, find_recipe, read_recipe
from zoo.errors import ZooError

__all__ = ["Arguments", "answer_early", "recipe_arguments", "without"]

#: the commands whose arguments name a recipe, a config or a run: :func:`answer_early` checks them
EARLY_CHECKED = ("fit", "validate", "test")
_NO_CONFIG = "name a recipe with --recipe NAME (`zoo list` shows them) or a config with --config FILE"


@dataclass
class Arguments:
    """A Lightning command's arguments, split into what zoo reads and what LightningCLI parses.

    Attributes:
        config: the config file read first (the recipe, or the checkpoint's run config), or None.
        recipe: the recipe's name: the run folder's parent is named after it.
        overrides: every other argument, as given, for LightningCLI.
        ckpt_path: the value of ``--ckpt_path``, if given.
    """

    config: Path | None
    recipe: str
    overrides: list[str] = field(default_factory=list)
    ckpt_path: str | None = None

    def for_lightning(self) -> list[str]:
        """The arguments LightningCLI parses: the config file, the recipe's name, then the overrides."""
        head = [] if self.config is None else ["--config", str(self.config), "--recipe", self.recipe]
        return [*head, *self.overrides]


def without(argv: Sequence[str], flag: str, *, takes_value: bool = True) -> list[str]:
    """``argv`` without ``flag`` (and its value, when it takes one)."""
    result: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == flag:
            skip = takes_value
            continue
        if token_key(token) == flag:
            continue
        result.append(token)
    return result


def recipe_arguments(command: str, argv: Sequence[str]) -> Arguments:
    """Split ``argv`` of ``zoo <command>`` and find its config file.

    For the evaluation commands, a given ``--ckpt_path`` is checked here, once, before anything reads it
    (``zoo fit`` checks its own when it resolves a resume).

    Raises:
        ZooError: unknown recipe, invalid YAML, an unsafe checkpoint, or no recipe and no config at all.
    """
    ckpt_path = token_value(argv, "--ckpt_path")
    overrides = without(argv, "--recipe")
    path = _checked_recipe(command, argv)
    if command != "fit" and ckpt_path is not None:
        checked_checkpoint(ckpt_path)
    if path is not None:
        return Arguments(path, path.stem, overrides, ckpt_path)
    if command != "fit" and ckpt_path is not None:
        run_config = run_config_of(ckpt_path)
        if run_config is not None:  # a checkpoint in a run folder brings its resolved config
            recipe_name = str(read_recipe(run_config).get("recipe") or run_config.parent.parent.name)
            return Arguments(run_config, recipe_name, overrides, ckpt_path)
    configs = [token_value(argv, "--config")] if "--config" in map(token_key, argv) else []
    if configs or {"-h", "--help"} & set(argv):
        name = Path(configs[0]).stem if configs and configs[0] else "run"
        return Arguments(None, name, list(argv), ckpt_path)
    raise ZooError(_NO_CONFIG)


def _checked_recipe(command: str, argv: Sequence[str]) -> Path | None:
    """The file of the recipe ``--recipe`` names, once read as one; None without ``--recipe``.

    Raises:
        ZooError: the recipe is unknown or not a recipe, or nothing else can give a config: no ``--config``,
            no ``--help`` and, for ``validate`` and ``test``, no ``--ckpt_path`` whose run folder may hold one.
    """
    recipe = token_value(argv, "--recipe")
    if recipe is not None:
        path = find_recipe(recipe)
        read_recipe(path)
        return path
    keys = set(map(token_key, argv))
    if "--config" in keys or {"-h", "--help"} & keys or (command != "fit" and "--ckpt_path" in keys):
        return None
    raise ZooError(_NO_CONFIG)


def answer_early(command: str, argv: Sequence[str]) -> int | None:
    """Answer what needs no Lightning before a command imports it (some seconds): ``zoo fit --list``, and a
    missing, unknown or malformed recipe (one line on stderr).

    Returns:
        the command's exit status when it is answered here (0 for the list, 2 for bad input); None when the
        command goes on, and checks its arguments again with everything else (:func:`recipe_arguments`).
    """
    if command not in EARLY_CHECKED:
        return None
    if command == "fit" and "--list" in argv:
        print("\n".join(describe_recipes()))
        return 0
    status = answer_bad_input(f"zoo {command}", lambda: _checked_recipe(command, argv))
    return status or None
