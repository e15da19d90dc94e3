"""The command line: ``python -m zoo.fit|test|predict --recipe NAME [overrides]``, on top of LightningCLI.

A recipe is a LightningCLI config file. ``--recipe NAME`` finds ``recipes/NAME.yaml`` (shipped inside the
wheel as ``zoo/recipes``); ``--recipe PATH`` takes any file. Every key can be overridden on the command line
(``--trainer.max_epochs 5``, ``--data.root /data``). What zoo adds to LightningCLI:

- a run folder per fit, ``<default_root_dir>/<recipe>/<date-time>``, holding the resolved ``config.yaml``,
  ``last.ckpt`` (saved often, atomically), ``best.ckpt`` and ``metrics.json``; ``--ckpt_path last`` resumes
  the latest run of the recipe in its own folder;
- a fit ends by evaluating the best checkpoint on the validation and test splits;
- W&B runs offline unless you are logged in, and never prompts;
- bad input (unknown recipe, model or key, malformed YAML, wrong types, missing or corrupt data, a class count
  that disagrees with the data) is answered by one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import difflib
import json
import logging
import netrc
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from zoo.errors import ZooError

__all__ = ["Reference", "build_cli", "find_recipe", "list_recipes", "main"]

Command = Literal["fit", "test", "predict"]

_USAGE: dict[str, str] = {
    "fit": "Train a recipe, then test its best checkpoint: python -m zoo.fit --recipe NAME|PATH [--key value ...]. "
    "--list shows the recipes; --ckpt_path last resumes the latest run of the recipe.",
    "test": "Evaluate a checkpoint on the test split: python -m zoo.test --ckpt_path PATH [--recipe NAME|PATH].",
    "predict": "Write predictions (a CSV for classification, the task's own files for others: PNGs for style transfer): "
    "python -m zoo.predict --ckpt_path PATH [--recipe NAME|PATH] [--output FILE|FOLDER].",
}

#: set by the launching process so that the DDP ranks it starts write into the same run folder
_RUN_DIR_ENV = "_ZOO_RUN_DIR"


@dataclass(frozen=True)
class Reference:
    """The published result a recipe reproduces (see BASELINES.md).

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


# ---- recipes -------------------------------------------------------------------------------------------------


def recipe_dirs() -> list[Path]:
    """Folders holding the shipped recipes: ``zoo/recipes`` in a wheel, ``recipes/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    return [folder for folder in (here / "recipes", here.parent / "recipes") if folder.is_dir()]


def list_recipes() -> dict[str, Path]:
    """Shipped recipe names and their files."""
    recipes: dict[str, Path] = {}
    for folder in reversed(recipe_dirs()):
        recipes.update({path.stem: path for path in folder.glob("*.yaml")})
    return dict(sorted(recipes.items()))


def find_recipe(name_or_path: str) -> Path:
    """The file of a recipe given by name (``lenet5_fashionmnist``) or path (``my/recipe.yaml``)."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise ZooError(f"recipe file {path} does not exist")
        return path
    recipes = list_recipes()
    if name_or_path not in recipes:
        close = difflib.get_close_matches(name_or_path, recipes, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ZooError(f"unknown recipe '{name_or_path}'; {hint}`python -m zoo.fit --list` shows them all")
    return recipes[name_or_path]


def read_recipe(path: Path) -> dict[str, Any]:
    """Parse a recipe as YAML, turning syntax errors into one line that names the place."""
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
        published = (
            (
                f"reproduces {reference['metric']} {reference['value']} ({reference['source']})"
                if reference["value"] is not None
                else f"compares with {reference['source']} (no published figure)"
            )
            if {"metric", "value", "source"} <= reference.keys()
            else "no published reference"
        )
        lines.append(f"{name:<24} {recipe.get('description', '')} — {published}")
    return lines


# ---- the LightningCLI subclass -------------------------------------------------------------------------------


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _is_child_rank() -> bool:
    """Whether this process is a rank other than zero of a multi-process launch."""
    return any(
        int(os.environ.get(name, "0")) != 0 for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
    )


def _loggers(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if value not in (None, True, False) else []


def _import_cli() -> Any:
    # torch and Lightning are imported only once the arguments are known: `--list` and errors answer at once.
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI


def build_cli(command: Command, recipe_name: str, args: list[str]) -> Any:
    """Parse ``args`` and instantiate the task, the DataModule and the Trainer for ``command``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichModelSummary, RichProgressBar

    for handler in logging.getLogger("lightning.pytorch").handlers:
        handler.addFilter(_without_adverts)

    from zoo.callbacks import LastCheckpoint, LogConfig
    from zoo.tasks import BaseTask

    class ZooCLI(_import_cli()):  # type: ignore[misc]
        """LightningCLI with zoo's run folders, checkpoints, W&B defaults and recipe metadata."""

        run_dir: Path | None = None
        ckpt_path: str | None = None
        resolved_config = ""  # the fit's config as YAML, written to the run folder and sent to the loggers

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument("--description", type=str, default="", help="What the recipe trains.")
            parser.add_argument(
                "--reference", type=Reference | None, default=None, help="The published result."
            )
            parser.add_argument(
                "--ckpt_path",
                type=str | None,
                default=None,
                help="fit: 'last' resumes the latest run of this recipe, or a checkpoint path; test/predict: "
                "the checkpoint to evaluate.",
            )
            parser.add_argument(
                "--run_dir",
                type=str | None,
                default=None,
                help="Run folder (default: <root>/<recipe>/<time>).",
            )
            parser.add_argument(
                "--save_every_n_steps",
                type=int,
                default=200,
                help="How often last.ckpt is written during an epoch.",
            )
            parser.set_defaults({"trainer.default_root_dir": "runs"})
            if command == "predict":
                parser.add_argument(
                    "--output",
                    type=str | None,
                    default=None,
                    help="Where the predictions go: a CSV file, or what the task writes (style transfer: a folder of PNGs).",
                )

        @staticmethod
        def configure_optimizers(lightning_module: Any, optimizer: Any, lr_scheduler: Any = None) -> Any:
            # A schedule that says it follows optimiser steps (zoo.tasks.schedules) is stepped every step.
            if getattr(lr_scheduler, "interval", "epoch") == "step":
                return {
                    "optimizer": optimizer,
                    "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"},
                }
            return _import_cli().configure_optimizers(lightning_module, optimizer, lr_scheduler)

        def before_instantiate_classes(self) -> None:
            config = self.config
            self.ckpt_path = config.ckpt_path
            if command != "fit":
                if not self.ckpt_path:
                    raise ZooError(f"zoo.{command} needs --ckpt_path (a checkpoint written by zoo.fit)")
                self.ckpt_path = str(_checked_checkpoint(Path(self.ckpt_path)))
                config.trainer.logger = False
                return
            self.run_dir = self._choose_run_dir(Path(config.trainer.default_root_dir))
            for logger in _loggers(config.trainer.logger):
                if str(getattr(logger, "class_path", "")).endswith("WandbLogger"):
                    init = logger.init_args
                    init.save_dir = str(self.run_dir)
                    init.name = init.name or f"{recipe_name}/{self.run_dir.name}"
                    init.id = init.id or f"{recipe_name}-{self.run_dir.name}".replace("/", "-")
                    init.resume = init.resume or "allow"
                    online = os.environ.get("WANDB_MODE", "online") in ("online", "run")
                    if online and init.log_model is False:  # upload checkpoints only where they can go
                        init.log_model = True

        def _choose_run_dir(self, root: Path) -> Path:
            child = _is_child_rank()
            # set by our rank zero before Lightning's launcher started the other ranks
            inherited = os.environ.get(_RUN_DIR_ENV)
            if child and inherited:
                run_dir = Path(inherited)
            elif self.ckpt_path == "last":
                run_dir = _latest_run(root / recipe_name)
            elif self.ckpt_path:
                checkpoint = _checked_checkpoint(Path(self.ckpt_path))
                ours = (checkpoint.parent / "config.yaml").is_file()
                run_dir = checkpoint.parent if ours else self._fresh_run_dir(root / recipe_name, child)
            else:
                run_dir = self._fresh_run_dir(root / recipe_name, child)
            if self.ckpt_path == "last":
                self.ckpt_path = str(run_dir / LastCheckpoint.FILENAME)
            os.environ[_RUN_DIR_ENV] = str(run_dir)
            return run_dir

        def _fresh_run_dir(self, parent: Path, child: bool) -> Path:
            if self.config.run_dir:
                run_dir = Path(self.config.run_dir)
                if not child and (run_dir / LastCheckpoint.FILENAME).exists():
                    raise ZooError(
                        f"{run_dir} already holds a run; resume it with --ckpt_path last or pick another"
                    )
                run_dir.mkdir(parents=True, exist_ok=True)
                return run_dir
            if child:
                raise ZooError(
                    "this process is one rank of a multi-process launch (torchrun, SLURM): pass --run_dir so that "
                    "every process writes to the same run folder"
                )
            return _new_run_dir(parent)

        def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
            trainer_config = self._get(self.config_init, "trainer", default={})
            given = trainer_config.get("callbacks") or []
            # one callback given on the command line (--trainer.callbacks CLASS) arrives alone, not in a list
            recipe_callbacks = list(given) if isinstance(given, list | tuple) else [given]
            extra: list[Any] = []
            if trainer_config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in recipe_callbacks
            ):
                extra.append(RichProgressBar(leave=True))
            if trainer_config.get("enable_model_summary") is not False:
                extra.append(RichModelSummary(max_depth=2))
            if self.run_dir is not None:
                self.resolved_config = self.parser.dump(self.config, skip_none=False)
                task = self.model
                extra += [
                    ModelCheckpoint(
                        dirpath=self.run_dir,
                        filename="best",
                        monitor=task.monitor,
                        mode=task.mode,
                        save_top_k=1,
                        enable_version_counter=False,
                    ),
                    LastCheckpoint(self.run_dir, every_n_train_steps=self.config.save_every_n_steps),
                    LogConfig(yaml.safe_load(self.resolved_config)),
                ]
            return super().instantiate_trainer(callbacks=recipe_callbacks + extra, **kwargs)

    try:
        return ZooCLI(
            model_class=BaseTask,
            subclass_mode_model=True,
            datamodule_class=L.LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=None,
            seed_everything_default=0,
            run=False,
            args=args,
            parser_kwargs={
                "exit_on_error": False,
                "allow_abbrev": False,
                "prog": f"python -m zoo.{command}",
                "description": _USAGE[command],
            },
        )
    except argparse.ArgumentError as error:
        raise ZooError(_one_line(str(error))) from error


def _without_adverts(record: logging.LogRecord) -> bool:
    """Drop Lightning's suggestions to install its cloud services, and its note on our own model summary."""
    return not record.getMessage().startswith(("💡 Tip", "Trainer already configured with model summary"))


def _one_line(message: str) -> str:
    """jsonargparse explains nested errors over several indented lines; keep them, on one line."""
    text = " ".join(message.split())
    return text if len(text) <= 400 else text[:397] + "..."


def _new_run_dir(parent: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise ZooError(f"cannot create a new run folder under {parent}")


def _latest_run(parent: Path) -> Path:
    runs = sorted(parent.glob("*/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ZooError(f"--ckpt_path last: no run with a last.ckpt under {parent}")
    return runs[-1].parent


def _checked_checkpoint(path: Path) -> Path:
    """Refuse a checkpoint that is missing or would need to unpickle code, before Lightning touches it."""
    import torch

    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # truncated zip, foreign pickle, disallowed global: all mean "not ours"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"checkpoint {path} cannot be loaded safely: {first}") from error
    return path


# ---- what each command does after instantiation -------------------------------------------------------------


def _hardware() -> str:
    """The device a run trained on, in words, for metrics.json and docs/results.md."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in sorted(metrics.items())}


def _fit(cli: Any, recipe_name: str) -> None:
    trainer, task, data = cli.trainer, cli.model, cli.datamodule
    config_file = cli.run_dir / "config.yaml"
    if trainer.is_global_zero and not _is_child_rank() and not config_file.exists():
        config_file.write_text(cli.resolved_config)
    started = time.perf_counter()
    trainer.fit(task, datamodule=data, ckpt_path=cli.ckpt_path, weights_only=True if cli.ckpt_path else None)
    fit_seconds = time.perf_counter() - started
    best = next(
        (c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "best_model_path", "")), ""
    )
    ckpt = best or None  # fast_dev_run saves no checkpoint: evaluate the weights in memory
    safe = True if ckpt else None
    val = trainer.validate(task, datamodule=data, ckpt_path=ckpt, verbose=False, weights_only=safe)
    test = trainer.test(task, datamodule=data, ckpt_path=ckpt, weights_only=safe)
    if not trainer.is_global_zero:
        return
    run_dir: Path = cli.run_dir
    cfg = cli.config
    result = {
        "recipe": recipe_name,
        "run_dir": str(run_dir),
        "best_checkpoint": best,
        "val": _scalars(val[0]) if val else {},
        "test": _scalars(test[0]) if test else {},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(fit_seconds, 1),
        "hardware": _hardware(),
        "devices": trainer.world_size,
        "date": dt.date.today().isoformat(),
        "reference": vars(cfg.reference) if cfg.reference is not None else None,
    }
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    reference = cfg.reference
    reached = result["test"].get(reference.metric) if reference is not None else None
    if reference is not None and reached is not None:
        if reference.value is not None:
            print(f"{reference.metric} {reached:.4f} (published {reference.value} by {reference.source})")
        else:
            print(f"{reference.metric} {reached:.4f} (no published figure: {reference.note})")
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()  # the next run in this process must not append to this one
            if os.environ.get("WANDB_MODE") == "offline":
                print(f"W&B ran offline; upload with: wandb sync {run_dir / 'wandb'}/offline-run-*")
    print(f"run folder: {run_dir}")


def _test(cli: Any) -> None:
    results = cli.trainer.test(
        cli.model, datamodule=cli.datamodule, ckpt_path=cli.ckpt_path, weights_only=True
    )
    if cli.trainer.is_global_zero and results:
        print(json.dumps(_scalars(results[0]), indent=2))


def _predict(cli: Any) -> None:
    checkpoint = Path(cli.ckpt_path)
    # A task with its own kind of output writes it itself, `write_predictions(batches, output) -> line to print`,
    # and may name the default output's suffix (style transfer: "", a folder of PNG files); otherwise a CSV.
    write_predictions = getattr(cli.model, "write_predictions", None)
    suffix = getattr(cli.model, "predictions_suffix", ".csv")
    output = (
        Path(cli.config.output)
        if cli.config.output
        else checkpoint.with_name(f"{checkpoint.stem}-predictions{suffix}")
    )
    if output.exists():
        raise ZooError(f"{output} exists; choose another file with --output")
    batches = cli.trainer.predict(
        cli.model, datamodule=cli.datamodule, ckpt_path=cli.ckpt_path, weights_only=True
    )
    if not cli.trainer.is_global_zero:
        return
    if write_predictions is not None:
        print(write_predictions(batches or [], output))
        return
    names = list(getattr(cli.datamodule, "classes", []) or [])
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "x", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "label", "predicted", "confidence", "predicted_name"])
        index = 0
        for batch in batches or []:
            for label, predicted, confidence in zip(
                batch["label"].tolist(),
                batch["predicted"].tolist(),
                batch["confidence"].tolist(),
                strict=True,
            ):
                name = names[predicted] if predicted < len(names) else ""
                writer.writerow([index, label, predicted, f"{confidence:.6f}", name])
                index += 1
    print(f"{index} predictions written to {output}")


# ---- entry point ---------------------------------------------------------------------------------------------


def _user_error(error: BaseException) -> BaseException | None:
    """The user-facing error behind ``error``: jsonargparse and Lightning wrap the errors raised inside them."""
    user_errors: tuple[type[BaseException], ...] = (ZooError,)
    if "lightning" in sys.modules:  # only Lightning can have raised its own kind
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        user_errors += (MisconfigurationException,)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, user_errors):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _split_zoo_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--recipe")
    parser.add_argument("--list", action="store_true")
    options, rest = parser.parse_known_args(argv)
    options.ckpt_path = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--ckpt_path"), None)
    return options, rest


def _run_config_of(checkpoint: str | None) -> Path | None:
    """The ``config.yaml`` of the run folder holding ``checkpoint``, if it is in one."""
    if checkpoint is None:
        return None
    config = Path(checkpoint).expanduser().parent / "config.yaml"
    return config if config.is_file() else None


def _quiet_defaults() -> None:
    if "WANDB_MODE" not in os.environ and not _wandb_logged_in():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r"LightningCLI.s args parameter is intended.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def main(command: Command = "fit", argv: list[str] | None = None) -> int:
    """Run ``python -m zoo.<command>``; returns the exit status (2 for bad input, with one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> None:
        options, rest = _split_zoo_args(argv)
        if options.list:
            print("\n".join(describe_recipes()))
            return
        if options.recipe:
            recipe = find_recipe(options.recipe)
            read_recipe(recipe)
            rest = ["--config", str(recipe), *rest]
            recipe_name = recipe.stem
        elif command != "fit" and (run_config := _run_config_of(options.ckpt_path)) is not None:
            # a checkpoint inside a run folder brings its own resolved config
            rest = ["--config", str(run_config), *rest]
            recipe_name = run_config.parent.parent.name
        elif "--config" in rest or {"-h", "--help"} & set(rest):
            recipe_name = "run"
        else:
            raise ZooError(
                "name a recipe with --recipe NAME (`--list` shows them) or a config with --config FILE"
            )
        _quiet_defaults()
        try:
            cli = build_cli(command, recipe_name, rest)
            if command == "fit":
                _fit(cli, recipe_name)
            elif command == "test":
                _test(cli)
            else:
                _predict(cli)
        finally:
            if not _is_child_rank():  # the run folder was for this run's ranks only, not for later runs
                os.environ.pop(_RUN_DIR_ENV, None)

    return answer_bad_input(f"zoo.{command}", run)


def answer_bad_input(program: str, run: Callable[[], object]) -> int:
    """Run a command line tool's body: bad input gets one line on stderr and exit status 2, Ctrl-C status 130.

    Args:
        program: the name the message starts with (``zoo.fit``).
        run: the tool's work; a :class:`ZooError` (or an error caused by one) raised from it is bad input,
            anything else a bug, raised with its traceback.

    Returns:
        The exit status: 0, 2 or 130.
    """
    try:
        run()
    except Exception as error:
        user_error = _user_error(error)
        if user_error is None:
            raise
        print(f"{program}: error: {_one_line(str(user_error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    return 0
