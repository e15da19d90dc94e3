"""Recipes: LightningCLI config files shipped in ``recipes/`` (inside the wheel as ``zoo/recipes``).

``--recipe NAME`` finds ``NAME.yaml`` among the shipped recipes; ``--recipe PATH`` (anything ending in ``.yaml``
or holding a path separator) takes a file of the user's. Each recipe names what it trains (``description:``) and
the published result it reproduces (``reference:``), read by ``zoo list``.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ZooError

__all__ = ["Reference", "describe_recipes", "find_recipe", "list_recipes", "read_recipe", "recipe_dirs"]


@dataclass(frozen=True)
class Reference:
    """The published result a recipe reproduces.

    Args:
        metric: the metric as zoo logs it, e.g. ``test_acc``.
        value: the published value, in the same units as the metric (accuracy as a fraction); None where the
            source gives curves only (He et al.'s plain nets), and the note says what to compare.
        source: where it was published.
        note: anything a reader needs to compare fairly (schedule, augmentation, hardware).
    """

    metric: str
    value: float | None
    source: str
    note: str = ""


def recipe_dirs() -> list[Path]:
    """Folders holding the shipped recipes: ``zoo/recipes`` in a wheel, ``recipes/`` in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    return [folder for folder in (package / "recipes", package.parent / "recipes") if folder.is_dir()]


def list_recipes() -> dict[str, Path]:
    """Shipped recipe names and their files, sorted by name."""
    recipes: dict[str, Path] = {}
    for folder in reversed(recipe_dirs()):
        recipes.update({path.stem: path for path in folder.glob("*.yaml")})
    return dict(sorted(recipes.items()))


def find_recipe(name_or_path: str) -> Path:
    """The file of a recipe given by name (``lenet5_fashionmnist``) or path (``my/recipe.yaml``).

    Raises:
        ZooError: no such file, or no shipped recipe of that name (the message suggests close names).
    """
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise ZooError(f"recipe file {path} does not exist")
        return path
    recipes = list_recipes()
    if name_or_path not in recipes:
        close = difflib.get_close_matches(name_or_path, recipes, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ZooError(f"unknown recipe '{name_or_path}'; {hint}`zoo list` shows them all")
    return recipes[name_or_path]


def read_recipe(path: Path) -> dict[str, Any]:
    """Parse a recipe (or a run's ``config.yaml``) as YAML; syntax errors become one line naming the place.

    Raises:
        ZooError: unreadable file, invalid YAML, or YAML that is not a mapping of keys.
    """
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ZooError(f"recipe {path} is not valid YAML{where}: {problem}") from error
    except OSError as error:
        raise ZooError(f"cannot read recipe {path}: {error.strerror}") from error
    if not isinstance(content, dict):
        raise ZooError(f"recipe {path} should be a mapping of keys (model:, data:, trainer:, ...)")
    return content


def describe_recipes() -> list[str]:
    """One line per shipped recipe: its name, what it trains, and the published result it reproduces."""
    lines = []
    for name, path in list_recipes().items():
        recipe = read_recipe(path)
        reference = recipe.get("reference") or {}
        if not {"metric", "value", "source"} <= reference.keys():
            published = "no published reference"
        elif reference["value"] is None:
            published = f"compares with {reference['source']} (no published figure)"
        else:
            published = f"reproduces {reference['metric']} {reference['value']} ({reference['source']})"
        lines.append(f"{name:<24} {recipe.get('description', '')} — {published}")
    return lines
