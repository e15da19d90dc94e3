"""Seeded mutations of the shipped recipes, each run through ``zoo fit``: it trains (``--trainer.fast_dev_run``, on
fabricated data) or answers in one line with exit status 2, never with a traceback. A misspelled key or class name
is answered with the name meant (``did you mean ...?``).

The default suite runs :data:`QUICK` mutations; ``ZOO_SLOW=1 pytest -m slow tests/cli/test_recipe_fuzz.py`` runs
:data:`FULL` more.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, detection_recipe_args
from test_cli import RECIPE_ARGS, data_root_for

from zoo.cli import main

RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
QUICK = 40
FULL = 200
KINDS = ("wrong_type", "unknown_key", "misspelled_key", "missing_section", "out_of_range", "class_path")
#: values of another type than a leaf's, by the leaf's type
OTHER_TYPES: dict[type, list[Any]] = {
    bool: ["maybe", [1], 7],
    int: ["abc", [1, 2], {"a": 1}, 2.5],
    float: ["abc", [0.1], {"a": 1}, True],
    str: [[1, 2], {"a": 1}, 12],
    list: ["abc", 3, {"a": 1}],
    type(None): ["abc", [1], 3.5],
}
#: values out of the usual ranges: negative, zero, a fraction above one, not a number
OUT_OF_RANGE = [-1, 0, -0.5, 1.5, math.nan, -1000]
#: keys a misspelling of which need not be answered with a suggestion (none: a network builder's own keywords,
#: under model_kwargs, are suggested by the registry)
NO_SUGGESTION_UNDER: tuple[str, ...] = ()


@dataclass
class Mutation:
    """One change to one recipe, and what its answer must hold."""

    recipe: str
    kind: str
    what: str
    config: dict[str, Any]
    suggestion: bool = False


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every value of a config that is not a mapping or a list of mappings, with its path."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return [leaf for index, item in enumerate(node) for leaf in _leaves(item, (*path, index))]
    return [(path, node)]


def _mappings(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every mapping in a config (the config itself first)."""
    found = [path] if isinstance(node, dict) else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in children:
        found += _mappings(value, (*path, key))
    return found


def _at(config: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        config = config[part]
    return config


def _misspelled(word: str, rng: random.Random) -> str:
    """``word`` with one letter dropped, doubled or swapped with the next (never the word itself)."""
    for _ in range(20):
        index = rng.randrange(len(word))
        how = rng.choice(("drop", "double", "swap")) if len(word) > 3 else "double"
        if how == "drop":
            changed = word[:index] + word[index + 1 :]
        elif how == "double":
            changed = word[: index + 1] + word[index] + word[index + 1 :]
        else:
            index = min(index, len(word) - 2)
            changed = word[:index] + word[index + 1] + word[index] + word[index + 2 :]
        if changed != word:
            return changed
    return word + "x"


def mutate(seed: int) -> Mutation:
    """The mutation of seed ``seed``: a recipe, a kind of change and the change, all drawn from the seed."""
    rng = random.Random(seed)
    recipe = rng.choice(RECIPES)
    config = yaml.safe_load((REPO / "recipes" / f"{recipe}.yaml").read_text())
    kind = KINDS[seed % len(KINDS)]
    leaves = [(p, v) for p, v in _leaves(config) if p[-1] not in ("class_path",)]
    if kind == "wrong_type":
        path, value = rng.choice(leaves)
        new = rng.choice(OTHER_TYPES.get(type(value), ["abc"]))
        _at(config, path[:-1])[path[-1]] = new
        return Mutation(recipe, kind, f"{'.'.join(map(str, path))}: {value!r} -> {new!r}", config)
    if kind == "unknown_key":
        path = rng.choice(_mappings(config))
        _at(config, path)["zz_unknown_option"] = rng.choice([1, "x", [1]])
        return Mutation(
            recipe, kind, f"{'.'.join(map(str, path)) or '(top)'}.zz_unknown_option added", config
        )
    if kind == "misspelled_key":
        path = rng.choice([p for p in _mappings(config) if _at(config, p)])
        mapping = _at(config, path)
        key = rng.choice(list(mapping))
        wrong = _misspelled(key, rng)
        mapping[wrong] = mapping.pop(key)
        suggestion = not any(part in NO_SUGGESTION_UNDER for part in path)
        where = ".".join(map(str, (*path, key)))
        return Mutation(recipe, kind, f"{where} spelled {wrong}", config, suggestion=suggestion)
    if kind == "missing_section":
        key = rng.choice(list(config))
        del config[key]
        return Mutation(recipe, kind, f"{key}: removed", config)
    if kind == "out_of_range":
        numbers = [(p, v) for p, v in leaves if isinstance(v, int | float) and not isinstance(v, bool)]
        path, value = rng.choice(numbers)
        new = rng.choice(OUT_OF_RANGE)
        _at(config, path[:-1])[path[-1]] = new
        return Mutation(recipe, kind, f"{'.'.join(map(str, path))}: {value!r} -> {new!r}", config)
    # a class_path: misspelled (a suggestion is due), of another kind of class, from no module, or left out
    paths = [p for p, _ in _leaves(config) if p[-1] == "class_path"]
    path = rng.choice(paths)
    owner = _at(config, path[:-1])
    class_path = owner["class_path"]
    module, _, name = class_path.rpartition(".")
    how = rng.choice(("class", "module", "other_kind", "no_module", "left_out"))
    if how == "class":
        owner["class_path"] = f"{module}.{_misspelled(name, rng)}"
    elif how == "module":
        parts = module.split(".")
        index = rng.randrange(len(parts))
        parts[index] = _misspelled(parts[index], rng)
        owner["class_path"] = ".".join([*parts, name])
    elif how == "other_kind":
        owner["class_path"] = rng.choice(["torch.optim.SGD", "zoo.data.MNISTDataModule", "zoo.callbacks.Filters",
                                          "zoo.tasks.ClassificationTask", "collections.OrderedDict"])  # fmt: skip
    elif how == "no_module":
        owner["class_path"] = "nosuch.module.Thing"
    else:
        del owner["class_path"]
    where = ".".join(map(str, path))
    return Mutation(recipe, kind, f"{where} ({how}): {class_path} -> {owner.get('class_path')}", config,
                    suggestion=how in ("class", "module") and owner["class_path"] != class_path)  # fmt: skip


def data_args(recipe: str, folder: Path) -> list[str]:
    """What the recipe needs to run in seconds on files fabricated in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if recipe.startswith("fasterrcnn_"):
        return detection_recipe_args(recipe, folder)
    root = data_root_for(recipe, folder)
    val_size = [] if "voc" in recipe else ["--data.init_args.val_size", "20"]
    return [
        *([] if root is None else ["--data.init_args.root", str(root), *val_size]),
        *RECIPE_ARGS.get(recipe, []),
    ]


def run_mutation(mutation: Mutation, folder: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """Run one mutated recipe; None when it was answered as it must be, else what went wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe_file = folder / f"{mutation.recipe}.yaml"
    recipe_file.write_text(yaml.safe_dump(mutation.config, sort_keys=False))
    runs = folder / "runs"
    args = ["--recipe", str(recipe_file), "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(runs), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", *data_args(mutation.recipe, folder / "data")]  # fmt: skip
    try:
        status = main("fit", args)
    except BaseException as error:
        return f"raised {type(error).__name__}: {' '.join(str(error).split())[:300]}"
    err = capsys.readouterr().err
    if status == 0:
        return None if not mutation.suggestion else "trained, but a misspelled name must be refused"
    lines = err.strip().splitlines()
    last = lines[-1] if lines else ""
    if status != 2 or "Traceback" in err or not last.startswith("zoo fit: error: "):
        return f"exit {status}: {last[:300]}"
    if mutation.suggestion and "did you mean" not in last:
        return f"no suggestion: {last[:300]}"
    if runs.exists() and any(runs.rglob("config.yaml")):
        return f"left a run folder behind: {last[:200]}"
    return None


def _check(seeds: range, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = []
    for seed in seeds:
        mutation = mutate(seed)
        problem = run_mutation(mutation, tmp_path / f"seed{seed}", capsys)
        if problem is not None:
            failures.append(f"seed {seed} {mutation.recipe} {mutation.kind} [{mutation.what}]: {problem}")
    assert not failures, "\n".join(failures)


def test_mutations_are_many_and_of_every_kind() -> None:
    mutations = [mutate(seed) for seed in range(QUICK + FULL)]
    assert len(mutations) >= 200 and {m.kind for m in mutations} == set(KINDS)
    assert len({m.recipe for m in mutations}) == len(RECIPES)
    assert len({(m.recipe, m.what) for m in mutations}) > 0.9 * len(mutations)  # hardly any twice
    assert sum(m.suggestion for m in mutations) >= 40


def test_quick_mutations_train_or_answer_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    _check(range(QUICK), tmp_path, capsys)
    print(f"{QUICK} mutations in {time.perf_counter() - started:.0f} s")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ZOO_SLOW"), reason="the full fuzz takes minutes: ZOO_SLOW=1 runs it")
def test_every_mutation_trains_or_answers_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(range(QUICK, QUICK + FULL), tmp_path, capsys)
