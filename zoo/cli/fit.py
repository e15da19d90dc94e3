"""``zoo fit``: train a recipe in a run folder of its own, then evaluate its best checkpoint.

The run folder, ``<trainer.default_root_dir>/<recipe>/<date-time>``, holds ``config.yaml`` (the resolved config),
``last.ckpt`` (written every ``--save_every_n_steps`` steps and every epoch, atomically), ``best.ckpt``,
``metrics.json`` (validation and test metrics of the best checkpoint, epochs, wall time, hardware, the published
reference), ``metrics.csv`` (one row an epoch, whatever the logger) and the loggers' files (``wandb/``,
``lightning_logs/``). ``--ckpt_path last`` or ``--ckpt_path RUN/last.ckpt`` resumes a run with its own
config (see :mod:`zoo.cli.runs`).

Under DDP, Lightning starts the other ranks by running the same command again; they read the arguments rank
zero resolved (and its run folder) from the environment, so that every rank trains the same config.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch import loggers as pl_loggers
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from zoo.callbacks import EpochMetrics, LastCheckpoint, LogConfig
from zoo.cli.arguments import recipe_arguments, without
from zoo.cli.checkpoints import RUN_CONFIG, checked_checkpoint
from zoo.cli.data_source import DataSource
from zoo.cli.environment import hardware, is_child_rank, launched_processes
from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import token_key
from zoo.cli.lightning import ZooCLI, data_follows_files, metrics_of
from zoo.cli.recipes import read_recipe
from zoo.cli.run_files import full_disk, send_to_wandb, write_whole
from zoo.cli.runs import (
    LAST,
    Change,
    check_changes,
    find_run,
    given_values,
    lookup,
    make_run_dir,
    missing_folders,
    new_run_dir,
    record_changes,
    remove_unstarted_run,
    run_of,
)
from zoo.cli.signals import StopOnSignal, answer_signals
from zoo.cli.speed import speed_record
from zoo.data import ZooDataModule
from zoo.errors import WriteError, ZooError

__all__ = ["FitCLI", "main"]

USAGE = (
    "zoo fit --recipe NAME|PATH [--ckpt_path last|PATH] [--resume_with_changes] [--run_dir DIR] "
    "[--save_every_n_steps N] [--KEY VALUE ...]   (zoo list shows the recipes)"
)
#: set by rank zero for the ranks Lightning's launcher starts: the run folder, and the resolved arguments
_RUN_DIR_ENV = "_ZOO_RUN_DIR"
_ARGUMENTS_ENV = "_ZOO_FIT_ARGUMENTS"
#: the loggers whose ``save_dir`` is pointed at the run folder
_RUN_FOLDER_LOGGERS = (CSVLogger, TensorBoardLogger, WandbLogger)


def _logger_class(name: str) -> type[Logger] | None:
    """The logger class an import path (or a class name in ``lightning.pytorch.loggers``) names; None otherwise."""
    module, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module) if module else pl_loggers, attribute, None)
    except (ImportError, ValueError):
        return None
    return found if isinstance(found, type) and issubclass(found, Logger) else None


def _with_save_dir(args: list[str]) -> list[str]:
    """``args`` with a stand-in ``save_dir`` after a ``--trainer.logger CLASS``, or a ``--config FILE`` whose
    ``trainer.logger`` is one logger with no ``save_dir``, where the logger requires one (CSV, TensorBoard).

    :meth:`FitCLI.before_instantiate_classes` points it at the run folder; a ``save_dir`` given later wins.
    """
    result: list[str] = []
    tokens = iter(args)
    for token in tokens:
        result.append(token)
        key, equals, value = token.partition("=")
        if key not in ("--trainer.logger", "--config"):
            continue
        if not equals:
            value = next(tokens, "")
            result.append(value)
        if key == "--config":
            logger = lookup(read_recipe(Path(value)), "trainer.logger")[1]
            if not isinstance(logger, dict) or "save_dir" in (logger.get("init_args") or {}):
                continue
            value = str(logger.get("class_path", ""))
        logger_class = _logger_class(value)
        if logger_class is not None and issubclass(logger_class, (CSVLogger, TensorBoardLogger)):
            result += ["--trainer.logger.init_args.save_dir", "."]
    return result


def _default_logger() -> str:
    """Lightning's default logger: TensorBoard where it is installed, CSV otherwise."""
    tensorboard = any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX"))
    return f"lightning.pytorch.loggers.{'TensorBoardLogger' if tensorboard else 'CSVLogger'}"


class FitCLI(ZooCLI):
    """``zoo fit``: LightningCLI's ``fit`` in a run folder, followed by the best checkpoint's evaluation.

    Args:
        args: LightningCLI's arguments (the config file first).
        recipe: the recipe's name, the run folder's parent.
        changes: overrides that change a resumed run's config (asked for with ``--resume_with_changes``).
        argv: the command line as given, recorded with the changes.
    """

    command = "fit"
    usage = USAGE

    def __init__(
        self, args: Sequence[str], *, recipe: str, changes: Sequence[Change] = (), argv: Sequence[str] = ()
    ) -> None:
        self.recipe, self.changes, self.argv = recipe, list(changes), list(argv)
        self.run_dir = Path()
        #: the folders this process created for the run (the run folder first), removed if it never trains
        self.created: list[Path] = []
        self.resolved_config = ""
        self.started = 0.0
        try:
            super().__init__(args)
        except BaseException as error:
            self._remove_if_unstarted()
            stopped = full_disk(error, self.run_dir if self.run_dir != Path() else None)
            if stopped is not None:
                raise stopped from error
            raise

    def _remove_if_unstarted(self) -> None:
        """After a failure before the first optimiser step, remove the run folder this process created for it (a
        resumed run's folder, or one the user made, was not created here and stays)."""
        trainer = getattr(self, "trainer", None)
        if not self.created or is_child_rank() or (trainer is not None and trainer.global_step > 0):
            return
        if (self.created[0] / LAST).exists():
            return
        for logger in trainer.loggers if trainer is not None else []:
            if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
                logger.experiment.finish(exit_code=1)  # W&B writes into the folder until its run is finished
        remove_unstarted_run(self.created)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """LightningCLI's parsing, letting ``--trainer.logger lightning.pytorch.loggers.CSVLogger`` (or
        ``TensorBoardLogger``) go without the ``save_dir`` it requires: the run folder, chosen later."""
        super().parse_arguments(parser, _with_save_dir(args) if isinstance(args, list) else args)

    def before_instantiate_classes(self) -> None:
        """Choose the run folder; every logger writes into it, W&B under the run's name, resuming its own run.

        ``logger: true`` (Lightning's default logger, which would write beside the runs) becomes the logger Lightning
        would pick, TensorBoard where it is installed and CSV otherwise, in the run folder.
        """
        super().before_instantiate_classes()
        options = self.options
        self.run_dir = self._choose_run_dir(Path(options.trainer.default_root_dir), options)
        loggers = options.trainer.logger
        if loggers is None or loggers is True:
            loggers = options.trainer.logger = Namespace(class_path=_default_logger(), init_args=Namespace())
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            logger_class = _logger_class(str(getattr(logger, "class_path", "")))
            if logger_class is not None and issubclass(logger_class, _RUN_FOLDER_LOGGERS):
                logger.init_args.save_dir = str(self.run_dir)
            if logger_class is not None and issubclass(logger_class, WandbLogger):
                init = logger.init_args
                init.name = init.name or f"{self.recipe}/{self.run_dir.name}"
                init.id = init.id or f"{self.recipe}-{self.run_dir.name}".replace("/", "-")
                init.resume = init.resume or "allow"
                online = os.environ.get("WANDB_MODE", "online") in ("online", "run")
                if online and init.log_model is False:  # upload checkpoints only where they can go
                    init.log_model = True

    def _choose_run_dir(self, root: Path, options: Any) -> Path:
        child = is_child_rank()
        inherited = os.environ.get(_RUN_DIR_ENV)
        if child and inherited:
            run_dir = Path(inherited)
        elif options.run_dir:
            run_dir = Path(options.run_dir).expanduser()
            resuming = options.ckpt_path and run_of(Path(options.ckpt_path)) == run_dir
            if not child and not resuming and (run_dir / LAST).exists():
                raise ZooError(
                    f"{run_dir} already holds a run; resume it with --ckpt_path last or pick another"
                )
            self.created = make_run_dir(run_dir)
        elif child or launched_processes() > 1:  # rank zero too: the others would wait for it forever
            raise ZooError(
                "this process is one rank of a multi-process launch (torchrun, SLURM): pass --run_dir so that "
                "every process writes to the same run folder"
            )
        else:
            parents = missing_folders(root / self.recipe)
            run_dir = new_run_dir(root / self.recipe)
            self.created = [run_dir, *parents]
        os.environ[_RUN_DIR_ENV] = str(run_dir)
        return run_dir

    def extra_callbacks(self) -> list[Callback]:
        """The best checkpoint, ``metrics.csv``, ``last.ckpt``, the resolved config sent to the loggers, and where
        there is a logger, the learning rate of every step it writes."""
        dumped = yaml.safe_load(self._parser(self.subcommand).dump(self.options, skip_none=False))
        for key in ("ckpt_path", "weights_only"):  # how this process started, not what the run trains
            dumped.pop(key, None)
        self.resolved_config = yaml.safe_dump(dumped, sort_keys=False)
        task = self.model
        callbacks: list[Callback] = [
            ModelCheckpoint(  # without a validation split, the best weights are the last
                dirpath=self.run_dir,
                filename="best",
                monitor=task.monitor if self._validates() else None,
                mode=task.mode,
                save_top_k=1,
                enable_version_counter=False,
            ),
            # before last.ckpt: a run stopped between the two writes the epoch's row again when resumed
            EpochMetrics(self.run_dir),
            last := LastCheckpoint(self.run_dir, every_n_train_steps=self.options.save_every_n_steps),
            StopOnSignal(last, resume_hint=f"--ckpt_path {last.path}"),  # a Checkpoint: runs after `last`
            LogConfig(dumped),
            DataSource(),  # the line saying where the data was found
        ]
        given = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        given = given if isinstance(given, list | tuple) else [given]
        if self.options.trainer.logger and not any(isinstance(c, LearningRateMonitor) for c in given):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        return callbacks

    def _validates(self) -> bool:
        """Whether the run's data holds out a validation split (:attr:`zoo.data.ZooDataModule.validates`)."""
        data = self.datamodule  # one of the user's own that is not a ZooDataModule is taken to validate
        return not isinstance(data, ZooDataModule) or data.validates

    def before_fit(self) -> None:
        """Write ``config.yaml`` for a new run; for a resume asked to change it, record and print the changes. Data
        without a validation split is not validated (Lightning would look for its batches and warn)."""
        if not self._validates():
            self.trainer.limit_val_batches = 0
        config_file, then = self.run_dir / RUN_CONFIG, "free some space, then run the command again"
        if self.trainer.is_global_zero and not is_child_rank():
            if self.changes:
                history = record_changes(self.run_dir, self.changes, self.argv)
                write_whole(config_file, self.resolved_config, then=then)
                for key, was, now in self.changes:
                    print(f"resuming with a change: {key} {was!r} -> {now!r} (recorded in {history})")
            elif not config_file.exists():
                write_whole(config_file, self.resolved_config, then=then)
        self.started = time.perf_counter()

    def after_fit(self) -> None:
        """Evaluate the best checkpoint on the validation and test splits; write ``metrics.json``."""
        trainer, task, data = self.trainer, self.model, self.datamodule
        fit_seconds = time.perf_counter() - self.started
        best = next(
            (c.best_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), ""
        )
        ckpt = best or None  # fast_dev_run saves no checkpoint: evaluate the weights in memory
        safe = True if ckpt else None
        val = trainer.validate(task, datamodule=data, ckpt_path=ckpt, verbose=False, weights_only=safe)
        test = trainer.test(task, datamodule=data, ckpt_path=ckpt, weights_only=safe)
        if not trainer.is_global_zero:
            return
        reference = self.options.reference
        tested = metrics_of(test[0]) if test else {}
        result = {
            "recipe": self.recipe,
            "run_dir": str(self.run_dir),
            "best_checkpoint": best,
            "val": metrics_of(val[0]) if val else {},
            "test": tested,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "fit_seconds": round(fit_seconds, 1),
            "hardware": hardware(),
            **speed_record(self.threads, self.precision, str(trainer.precision)),  # threads, precision, CPU
            "devices": trainer.world_size,
            "date": dt.date.today().isoformat(),
            "reference": vars(reference) if reference is not None else None,
        }
        then = f"the checkpoints are intact: free some space, then resume from {LAST} to evaluate it again"
        write_whole(self.run_dir / "metrics.json", json.dumps(result, indent=2) + "\n", then=then)
        reached = tested.get(reference.metric) if reference is not None else None
        if reference is not None and reached is not None:
            if reference.value is not None:
                print(f"{reference.metric} {reached:.4f} (published {reference.value} by {reference.source})")
            else:
                print(f"{reference.metric} {reached:.4f} (no published figure: {reference.note})")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                try:
                    send_to_wandb(logger, self.run_dir, [RUN_CONFIG, "metrics.json"])
                except WriteError:
                    logger.experiment.finish(exit_code=1)
                    raise
                logger.experiment.finish()  # the next run in this process must not append to this one
                if os.environ.get("WANDB_MODE") == "offline":
                    print(f"W&B ran offline; upload with: wandb sync {self.run_dir / 'wandb'}/offline-run-*")
        print(f"run folder: {self.run_dir}")


def _run_name(recipe_name: str, recipe: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """The name of the folder holding a recipe's runs: the recipe's, followed by the data folder's name for data
    read from the user's own image folder (``folder_lenet5-PHOTOS``), so that runs on other folders stay apart.

    Raises:
        ZooError: such a recipe is given no data folder.
    """
    data = given.get("data.class_path") or given.get("data") or lookup(recipe, "data.class_path")[1]
    if isinstance(data, Mapping):  # --data '{"class_path": ...}'
        data = data.get("class_path")
    if not data_follows_files(data):
        return recipe_name
    root = given.get("data.root") or given.get("data.init_args.root") or lookup(recipe, "data.root")[1]
    if not root:
        raise ZooError(f"{recipe_name} trains on your own images: name their folder with --data.root PHOTOS")
    return f"{recipe_name}-{Path(str(root)).expanduser().resolve().name}"


def _resolve(argv: list[str]) -> tuple[list[str], str, list[Change]]:
    """LightningCLI's arguments, the name of the folder of the recipe's runs (:func:`_run_name`) and the changes to a
    resumed run, for ``argv``."""
    allow_changes = any(token_key(t) == "--resume_with_changes" for t in argv)
    argv = without(argv, "--resume_with_changes", takes_value=False)
    arguments = recipe_arguments("fit", argv)
    recipe = read_recipe(arguments.config) if arguments.config is not None else {}
    overrides = without(without(arguments.overrides, "--ckpt_path"), "--run_dir")
    given = given_values(overrides)
    if arguments.ckpt_path is None:
        return arguments.for_lightning(), _run_name(arguments.recipe, recipe, given), []
    if arguments.ckpt_path == "last":
        root = (
            given.get("trainer.default_root_dir") or lookup(recipe, "trainer.default_root_dir")[1] or "runs"
        )
        parent = Path(str(root)).expanduser() / _run_name(arguments.recipe, recipe, given)
        run: Path | None = find_run(parent, given, allow_changes=allow_changes)
        checkpoint = Path(run) / LAST if run else None
    else:
        checkpoint = checked_checkpoint(arguments.ckpt_path)
        run = run_of(checkpoint)
    if run is None:  # a checkpoint from elsewhere: a new run starts from it
        return arguments.for_lightning(), _run_name(arguments.recipe, recipe, given), []
    name = _run_name(arguments.recipe, read_recipe(run / RUN_CONFIG), given)
    changes = check_changes(run, given, allow_changes=allow_changes)
    args = [
        "--config",
        str(run / RUN_CONFIG),
        *overrides,
        "--ckpt_path",
        str(checkpoint),
        "--run_dir",
        str(run),
    ]
    return args, name, changes


def _run(argv: list[str]) -> None:
    inherited = os.environ.get(_ARGUMENTS_ENV) if is_child_rank() else None
    if inherited:
        args, recipe, changes = json.loads(inherited)
    else:
        args, recipe, changes = _resolve(argv)
        os.environ[_ARGUMENTS_ENV] = json.dumps([args, recipe, changes])
    try:
        FitCLI(args, recipe=recipe, changes=[tuple(c) for c in changes], argv=argv)
    finally:
        if not is_child_rank():  # for this run's ranks only, not for later runs in this process
            os.environ.pop(_RUN_DIR_ENV, None)
            os.environ.pop(_ARGUMENTS_ENV, None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo fit``; returns the exit status (2 for bad input, with one line on stderr).

    Args:
        argv: the arguments after ``fit`` (default: ``sys.argv[1:]``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    return answer_signals("zoo fit", lambda: answer_bad_input("zoo fit", lambda: _run(arguments)))
