"""Run folders, and which run a resume continues.

Every fit writes into its own folder, ``<trainer.default_root_dir>/<recipe>/<date-time>``: ``config.yaml`` (the
resolved config), ``last.ckpt``, ``best.ckpt``, ``metrics.json`` and the loggers' files.

A run is resumed with its own ``config.yaml``, never with the recipe's current defaults. ``--ckpt_path last``
picks the newest run of the recipe whose config agrees with every override given on the command line (a
``--data.root`` given picks a run of that data); ``--ckpt_path RUN/last.ckpt`` names the run. An override that
disagrees with the run's config is refused, naming the key and both values, unless the user asks for the change
with ``--resume_with_changes``: then it is applied, printed, and appended to the run's ``config_history.yaml``.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from zoo.cli.checkpoints import RUN_CONFIG
from zoo.cli.flags import token_key
from zoo.errors import ZooError

__all__ = [
    "CONFIG_HISTORY",
    "LAST",
    "Change",
    "check_changes",
    "differences",
    "find_run",
    "given_values",
    "lookup",
    "make_run_dir",
    "missing_folders",
    "new_run_dir",
    "record_changes",
    "remove_unstarted_run",
    "run_of",
]

#: the checkpoint a run rewrites as it trains (zoo.callbacks.LastCheckpoint writes it)
LAST = "last.ckpt"
#: the changes made to a run's config by resumes, appended one entry per resume
CONFIG_HISTORY = "config_history.yaml"
#: sections whose options sit under ``init_args`` in a config and may be given without it (``--data.root``)
_CLASS_SECTIONS = ("model", "data", "optimizer", "lr_scheduler")
#: keys that say where or how visibly a run goes, not what it trains: they may differ on a resume
_NOT_COMPARED = {
    "ckpt_path",
    "run_dir",
    "recipe",
    "weights_only",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "threads",  # how fast the host runs it
}

#: one difference between a run's config and a resume's overrides: (key, the run's value, the value asked for)
Change = tuple[str, Any, Any]


def new_run_dir(parent: Path) -> Path:
    """Create and return a fresh ``parent/<date-time>`` folder (``-2``, ``-3``, ... when the second is taken)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise ZooError(
                f"cannot create a run folder under {parent}: {error.strerror}; choose another "
                "--trainer.default_root_dir"
            ) from error
        return candidate
    raise ZooError(f"cannot create a new run folder under {parent}")


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first: what ``mkdir(parents=True)`` would make."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def make_run_dir(folder: Path) -> list[Path]:
    """Create the run folder ``folder`` a user named (``--run_dir``), if it does not exist.

    Returns:
        The folders created (:func:`missing_folders`), for :func:`remove_unstarted_run`.

    Raises:
        ZooError: it cannot be created, in one line.
    """
    missing = missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZooError(
            f"cannot create the run folder {folder}: {error.strerror}; choose another --run_dir"
        ) from error
    return missing


def remove_unstarted_run(created: Sequence[Path]) -> None:
    """Remove a run folder created for a run that stopped before its first optimiser step, and the parents created
    for it that are left empty; a folder that existed before the run is never in ``created``.

    Args:
        created: the folders the run created, deepest (the run folder) first.
    """
    if not created:
        return
    shutil.rmtree(created[0], ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()  # only when empty: another run may have started in it meanwhile
        except OSError:
            return


def run_of(checkpoint: Path) -> Path | None:
    """The run folder holding ``checkpoint`` (it has a ``config.yaml``), or None for a checkpoint elsewhere."""
    folder = checkpoint.expanduser().parent
    return folder if (folder / RUN_CONFIG).is_file() else None


# ---- comparing a run's config with what is asked -----------------------------------------------------------


def given_values(overrides: Sequence[str]) -> dict[str, Any]:
    """The keys and values given by ``--key value`` and ``--key=value`` arguments, values read as YAML.

    ``--config FILE`` arguments contribute every key of the file.
    """
    given: dict[str, Any] = {}
    index = 0
    while index < len(overrides):
        token = overrides[index]
        index += 1
        if not token.startswith("--"):
            continue
        key = token_key(token)[2:]
        if "=" in token:
            text = token.split("=", 1)[1]
        elif index < len(overrides) and not overrides[index].startswith("--"):
            text = overrides[index]
            index += 1
        else:
            text = "true"
        if key == "config":
            given.update(_flattened(yaml.safe_load(Path(text).read_text()) or {}))
            continue
        try:
            given[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            given[key] = text
    return given


def _flattened(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted ``key`` in a nested config; ``data.root`` also finds ``data.init_args.root``."""
    parts = key.split(".")
    candidates = [parts]
    if len(parts) > 1 and parts[0] in _CLASS_SECTIONS and parts[1] not in ("class_path", "init_args"):
        candidates.append([parts[0], "init_args", *parts[1:]])
    for path in candidates:
        node: Any = config
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return True, node
    return False, None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):  # a class given as {class_path: ...} or by its name
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:  # 1e-3 and 0.001, 2 and "2": YAML reads some numbers as strings
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        pass
    else:
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(a, str) and isinstance(b, str):  # the same folder written two ways
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    return False


def differences(run_config: Mapping[str, Any], given: Mapping[str, Any]) -> list[Change]:
    """The given keys whose value differs from the run's config, as ``(key, run's value, given value)``."""
    changes = []
    for key, value in given.items():
        if key in _NOT_COMPARED:
            continue
        _, current = lookup(run_config, key)
        if not _same(current, value):
            changes.append((key, current, value))
    return changes


def _describe(change: Change) -> str:
    key, current, value = change
    return f"{key} is {current!r} in the run, {value!r} here"


# ---- choosing the run to resume -----------------------------------------------------------------------------


def find_run(parent: Path, given: Mapping[str, Any], *, allow_changes: bool) -> Path:
    """The newest run under ``parent`` (``<root>/<recipe>``) with a ``last.ckpt`` that agrees with ``given``.

    Args:
        parent: the recipe's folder of runs.
        given: the overrides of the resume (:func:`given_values`).
        allow_changes: take the newest run even where it disagrees with ``given`` (the user asked to change it).

    Raises:
        ZooError: no run to resume, or none that agrees; the message names the newest run's disagreements.
    """
    runs = sorted(
        (p.parent for p in parent.glob(f"*/{LAST}") if (p.parent / RUN_CONFIG).is_file()),
        key=lambda folder: (folder / LAST).stat().st_mtime,
        reverse=True,
    )
    if not runs:
        raise ZooError(f"--ckpt_path last: no run with a {LAST} under {parent}")
    if allow_changes:
        return runs[0]
    for run in runs:
        if not differences(yaml.safe_load((run / RUN_CONFIG).read_text()) or {}, given):
            return run
    newest = differences(yaml.safe_load((runs[0] / RUN_CONFIG).read_text()) or {}, given)
    raise ZooError(
        f"--ckpt_path last: none of the {len(runs)} runs under {parent} was trained with these overrides "
        f"(the newest, {runs[0].name}: {'; '.join(_describe(c) for c in newest)}); resume one with "
        f"--ckpt_path RUN/{LAST}, or add --resume_with_changes to change the newest"
    )


def check_changes(run_dir: Path, given: Mapping[str, Any], *, allow_changes: bool) -> list[Change]:
    """The overrides that change ``run_dir``'s config; refused unless ``allow_changes``.

    Raises:
        ZooError: an override disagrees with the run's config and changes were not asked for.
    """
    changes = differences(yaml.safe_load((run_dir / RUN_CONFIG).read_text()) or {}, given)
    if changes and not allow_changes:
        raise ZooError(
            f"resuming {run_dir} with its own config.yaml, but {_describe(changes[0])}"
            + (f" (and {len(changes) - 1} more)" if len(changes) > 1 else "")
            + "; drop the override, or add --resume_with_changes to change the run"
        )
    return changes


def record_changes(run_dir: Path, changes: Sequence[Change], argv: Sequence[str]) -> Path:
    """Append the changes a resume made to ``run_dir/config_history.yaml``; returns that file."""
    history = run_dir / CONFIG_HISTORY
    entry = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "arguments": list(argv),
        "changes": {key: {"was": current, "now": value} for key, current, value in changes},
    }
    with open(history, "a") as file:
        yaml.safe_dump([entry], file, sort_keys=False)
    return history
