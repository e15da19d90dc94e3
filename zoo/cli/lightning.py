"""``ZooCLI``: LightningCLI with zoo's recipe keys, progress, model summary and quiet defaults.

Each Lightning command (``zoo fit``, ``validate``, ``test``, ``predict``) subclasses :class:`ZooCLI` in its own
module, declares its one LightningCLI subcommand, and does its own work in LightningCLI's hooks
(``before_instantiate_classes``, ``before_<subcommand>``, ``after_<subcommand>``). LightningCLI parses the
config, instantiates the task, the DataModule and the Trainer, and runs the subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback, ProgressBar, RichModelSummary
from lightning.pytorch.cli import LightningCLI

from zoo.callbacks.atomic_checkpoint_io import AtomicCheckpointIO
from zoo.callbacks.progress_bar import TimedProgressBar
from zoo.cli.checkpoints import check_fits
from zoo.cli.environment import is_child_rank, note_launcher, quiet_defaults
from zoo.cli.flags import token_key
from zoo.cli.parse_errors import explain_parse_error
from zoo.cli.precision import choose_precision, timing_inputs, training_device
from zoo.cli.recipes import Reference
from zoo.cli.speed import Choice, check_threads, choose_threads, say, share_threads
from zoo.cli.values import check_values
from zoo.data.folder import ImageFilesDataModule
from zoo.distributed import raise_from_rank_zero
from zoo.errors import WriteError, ZooError
from zoo.tasks import BaseTask

__all__ = ["ZooCLI", "ZooTrainer", "data_follows_files", "metrics_of", "run_evaluation"]

#: what a task takes from data whose classes and channels come from its image files: data attribute -> task option
FOLLOWED = {"num_classes": "num_classes", "channels": "in_channels"}


def data_follows_files(class_path: object) -> bool:
    """Whether the DataModule ``class_path`` names (``zoo.data.FolderDataModule``, or ``FolderDataModule`` as a
    recipe may shorten it) is an :class:`~zoo.data.folder.ImageFilesDataModule`, whose files decide the task's
    classes and channels."""
    if not isinstance(class_path, str) or not class_path:
        return False
    module, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module or "zoo.data"), name, None)
    except (ImportError, ValueError):
        return False
    return isinstance(found, type) and issubclass(found, ImageFilesDataModule)


def _weights_channels(model: Any) -> int | None:
    """The input channels of the registered pretrained weights a task's config names (``model: resnet18``,
    ``weights: imagenet``), or None when it names none (or a file, which the builder reads)."""
    from zoo.models.weights import find_weights, list_weights

    init = getattr(model, "init_args", None)
    name, tag = (init.get("model"), init.get("weights")) if init is not None else (None, None)
    if not isinstance(name, str) or not isinstance(tag, str) or f"{name}.{tag}" not in list_weights(name):
        return None
    return find_weights(name, tag).in_channels


def _configs(args: Sequence[str]) -> list[object]:
    """The contents of the config files among ``args`` (``--config FILE``); a file that does not read is left out
    (jsonargparse has said why)."""
    found: list[object] = []
    for index, token in enumerate(args):
        name = token.split("=", 1)[1] if token.startswith("--config=") else None
        if token == "--config" and index + 1 < len(args):
            name = args[index + 1]
        if name is not None:
            try:
                found.append(yaml.safe_load(Path(name).read_text()))
            except (OSError, yaml.YAMLError):
                continue
    return found


def metrics_of(values: Mapping[str, Any]) -> dict[str, float]:
    """Logged metrics (tensors or numbers) as plain floats, sorted by name, for JSON."""
    return {key: round(float(value), 6) for key, value in sorted(values.items())}


class ZooTrainer(L.Trainer):
    """Lightning's Trainer, whose checkpoints stop every rank together when one cannot be written.

    Rank zero alone writes a checkpoint (through :class:`~zoo.callbacks.AtomicCheckpointIO`, which raises
    :class:`~zoo.errors.WriteError`), while the other ranks wait for it in Lightning's barrier: a failed write is
    broadcast, and every rank raises it.
    """

    def save_checkpoint(
        self, filepath: str | Path, weights_only: bool | None = None, storage_options: Any = None
    ) -> None:
        """Lightning's ``save_checkpoint``, called on every rank.

        Raises:
            WriteError: on every rank, when rank zero could not write the file (what was there is kept).
        """
        failure: str | None = None
        try:
            super().save_checkpoint(filepath, weights_only, storage_options)
        except WriteError as error:  # only rank zero writes, so only rank zero gets here
            failure = str(error)
            self.strategy.barrier("Trainer.save_checkpoint")  # where the others wait
        raise_from_rank_zero(self, failure)


class ZooCLI(LightningCLI):
    """LightningCLI for one subcommand, with the keys every zoo recipe may hold.

    Subclasses set :attr:`command` and :attr:`usage`, and override :meth:`extra_callbacks` and LightningCLI's
    hooks. Parsing errors are raised as one-line :class:`~zoo.errors.ZooError`.

    Args:
        args: the subcommand's arguments (without the subcommand itself), ``--config FILE`` first.
        run: run the subcommand after instantiating the classes (False only instantiates them).
    """

    #: the LightningCLI subcommand this class runs
    command: ClassVar[str] = "fit"
    #: the usage line of ``--help``
    usage: ClassVar[str] = ""

    def __init__(self, args: Sequence[str], *, run: bool = True) -> None:
        quiet_defaults()
        note_launcher()  # the ranks Lightning starts from this process end after it (zoo.cli.errors)
        self.precision_given = False
        #: zoo's choices of threads and precision (zoo.cli.speed), made when the Trainer is instantiated
        self.threads: Choice | None = None
        self.precision: Choice | None = None
        settings = {"exit_on_error": False, "allow_abbrev": False}
        try:
            super().__init__(
                model_class=BaseTask,
                trainer_class=ZooTrainer,
                subclass_mode_model=True,
                datamodule_class=L.LightningDataModule,
                subclass_mode_data=True,
                save_config_callback=None,
                seed_everything_default=0,
                run=run,
                args=[self.command, *args] if run else list(args),
                parser_kwargs={
                    **settings,
                    "prog": "zoo",
                    self.command: {**settings, "prog": f"zoo {self.command}", "usage": self.usage or None},
                },
            )
        except argparse.ArgumentError as error:
            raise ZooError(explain_parse_error(str(error), self._known_keys(run), _configs(args))) from error

    def _known_keys(self, run: bool) -> list[str]:
        """The keys the command's parser takes (for suggesting one in place of an unknown key)."""
        try:
            parser = self._parser(self.command if run else None)
        except (AttributeError, KeyError):  # the parser was not made
            return []
        return [action.dest for action in parser._actions]

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:
        """Only this class's own subcommand."""
        return {cls.command: LightningCLI.subcommands()[cls.command]}

    @property
    def options(self) -> Any:
        """The parsed config of the subcommand (a jsonargparse ``Namespace``)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def add_arguments_to_parser(self, parser: Any) -> None:
        """The keys a recipe may hold besides LightningCLI's: what it is and what it reproduces."""
        parser.add_argument("--recipe", type=str | None, default=None, help="The recipe's name (or file).")
        parser.add_argument("--description", type=str, default="", help="What the recipe trains.")
        parser.add_argument("--reference", type=Reference | None, default=None, help="The published result.")
        parser.add_argument(
            "--run_dir", type=str | None, default=None, help="Run folder (default: <root>/<recipe>/<time>)."
        )
        parser.add_argument(
            "--save_every_n_steps",
            type=int,
            default=200,
            help="How often last.ckpt is written during an epoch.",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="torch's intra-op threads (default: the cores other processes leave free; see zoo.cli.speed).",
        )
        parser.add_argument(
            "--auto_precision",
            type=bool,
            default=False,
            help="Train in trainer.precision (or bf16-mixed) only where it is measured faster here, else 32-true.",
        )
        parser.set_defaults({"trainer.default_root_dir": "runs"})

    @staticmethod
    def configure_optimizers(lightning_module: Any, optimizer: Any, lr_scheduler: Any = None) -> Any:
        """LightningCLI's optimiser set-up; a schedule that follows optimiser steps is stepped every step."""
        if getattr(lr_scheduler, "interval", "epoch") == "step":  # zoo.tasks.schedules
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": "step"}}
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """LightningCLI's parsing; for data whose image files decide the classes and channels
        (:class:`~zoo.data.folder.ImageFilesDataModule`), parsed again with ``data.num_classes`` and ``data.channels``
        linked to the task's ``num_classes`` and ``in_channels`` (``apply_on="instantiate"``).

        The links are made for that data only: jsonargparse leaves a link's target out of every config it dumps
        (a run's ``config.yaml``) and writes over a value typed for it, which other recipes need to keep.

        A Lightning command's values are checked (:mod:`zoo.cli.values`) as soon as they are parsed, before the seed
        is set or anything is built.

        Raises:
            ZooError: ``num_classes`` or ``in_channels`` is given for such data, or a value cannot work.
        """
        # an explicit --trainer.precision is obeyed, whatever auto_precision says (zoo.cli.speed)
        keys = {token_key(str(token)) for token in args} if isinstance(args, list) else set()
        self.precision_given = "--trainer.precision" in keys
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:  # a Lightning command, not the inspection of a checkpoint's config (zoo.cli.loading)
            parsed = self.config[subcommand]
            auto = bool(parsed.get("auto_precision")) and not self.precision_given
            check_values(parsed, command=self.command, auto_precision=auto)
        data = (self.config[subcommand] if subcommand else self.config).get("data")
        if not data_follows_files(getattr(data, "class_path", None)):
            return
        typed = {f"--model.{s}{option}" for option in FOLLOWED.values() for s in ("", "init_args.")}
        given = next((token_key(t) for t in args if isinstance(t, str) and token_key(t) in typed), None)
        if given is not None:
            which = (
                "the class folders"
                if given.endswith("num_classes")
                else "the images (or --data.channels 1 or 3)"
            )
            raise ZooError(
                f"{given} follows from the data of {data.class_path.rpartition('.')[2]}, from {which}: drop it"
            )
        links = self._parser(subcommand)
        for source, target in FOLLOWED.items():
            links.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")
        super().parse_arguments(parser, args)
        options = self.config[subcommand] if subcommand else self.config
        init = options.data.init_args
        if "channels" in init and init.channels is None:  # pretrained weights decide, where they say
            init.channels = _weights_channels(options.model)

    def _parse_ckpt_path(self) -> None:
        """Leave the config alone: a run folder's ``config.yaml`` is its source of truth, not a checkpoint's
        hyperparameters (LightningCLI would write those over the model's config)."""

    def before_instantiate_classes(self) -> None:
        """Evaluation commands load checkpoints without unpickling code and log nowhere; ``--threads`` is checked."""
        if self.options.get("threads") is not None:
            check_threads(self.options.threads)
        if self.command != "fit":
            self.options.trainer.logger = False
        if self.subcommand and self.options.get("ckpt_path"):
            self.options.weights_only = True

    def print_metrics(self) -> None:
        """Print what the subcommand logged (the metrics of an evaluation) as JSON, on rank zero."""
        if self.trainer.is_global_zero:
            print(json.dumps(metrics_of(self.trainer.callback_metrics), indent=2))

    def extra_callbacks(self) -> list[Callback]:
        """Callbacks the command adds to the recipe's (called once the task is instantiated)."""
        return []

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The recipe's callbacks, a Rich progress bar and model summary, then :meth:`extra_callbacks`; the threads
        and the precision chosen for this host (:mod:`zoo.cli.speed`, :mod:`zoo.cli.precision`), each said in one line."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        given = trainer_config.get("callbacks") or []
        # one callback given on the command line (--trainer.callbacks CLASS) arrives alone, not in a list
        callbacks = list(given) if isinstance(given, list | tuple) else [given]
        if trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(TimedProgressBar(leave=True))
        if trainer_config.get("enable_model_summary") is not False:
            callbacks.append(RichModelSummary(max_depth=2))
        ckpt_path = self.options.get("ckpt_path") if self.subcommand else None
        if ckpt_path:  # one line now, not a state-dict traceback once the data is read
            check_fits(self.model, ckpt_path)
        self.threads = choose_threads(self.options.get("threads"))
        if self.subcommand:  # a Lightning command, not the inspection of a checkpoint (zoo.cli.loading)
            self.precision = self._choose_precision(trainer_config)
            kwargs.setdefault("precision", self.precision.value)
        if not trainer_config.get(
            "plugins"
        ):  # every checkpoint written whole, unless the recipe names its own I/O
            kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        trainer = super().instantiate_trainer(callbacks=callbacks + self.extra_callbacks(), **kwargs)
        self.threads = share_threads(self.threads, getattr(trainer.strategy, "num_processes", 1))
        if self.command == "fit" and not is_child_rank():  # an evaluation's output is its metrics alone
            say(self.threads, "threads")
            if self.precision is not None and (self.options.get("auto_precision") or self.precision_given):
                say(self.precision, "precision")
        return trainer

    def _choose_precision(self, trainer_config: Mapping[str, Any]) -> Choice:
        auto, given = bool(self.options.get("auto_precision")), self.precision_given
        timed = auto and not given
        net, shape, batch = timing_inputs(self.model, self.datamodule) if timed else (None, None, 1)
        return choose_precision(
            trainer_config.get("precision"),
            auto=auto,
            given=given,
            device=training_device(trainer_config.get("accelerator")),
            net=net,
            shape=shape,
            batch=batch,
        )


def run_evaluation(cli_class: type[ZooCLI], argv: Sequence[str]) -> ZooCLI:
    """Run an evaluation command (``validate``, ``test``, ``predict``): a checkpoint is required, and the
    config comes from ``--recipe`` or from the checkpoint's run folder.

    Raises:
        ZooError: no ``--ckpt_path``, an unsafe checkpoint, or bad arguments.
    """
    from zoo.cli.arguments import recipe_arguments

    arguments = recipe_arguments(cli_class.command, argv)
    if {"-h", "--help"} & set(argv):
        return cli_class(arguments.for_lightning())
    if arguments.ckpt_path is None:
        raise ZooError(f"zoo {cli_class.command} needs --ckpt_path (a checkpoint written by zoo fit)")
    return cli_class(arguments.for_lightning())
