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
from typing import Any, ClassVar

import lightning as L
from lightning.pytorch.callbacks import Callback, ProgressBar, RichModelSummary, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from zoo.cli.checkpoints import check_fits
from zoo.cli.environment import quiet_defaults
from zoo.cli.errors import one_line
from zoo.cli.flags import token_key
from zoo.cli.recipes import Reference
from zoo.data.folder import ImageFilesDataModule
from zoo.errors import ZooError
from zoo.tasks import BaseTask

__all__ = ["ZooCLI", "data_follows_files", "metrics_of", "run_evaluation"]

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


def metrics_of(values: Mapping[str, Any]) -> dict[str, float]:
    """Logged metrics (tensors or numbers) as plain floats, sorted by name, for JSON."""
    return {key: round(float(value), 6) for key, value in sorted(values.items())}


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
        settings = {"exit_on_error": False, "allow_abbrev": False}
        try:
            super().__init__(
                model_class=BaseTask,
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
            raise ZooError(one_line(str(error))) from error

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

        Raises:
            ZooError: ``num_classes`` or ``in_channels`` is given for such data.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
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
        """Evaluation commands load checkpoints without unpickling code and log nowhere."""
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
        """The recipe's callbacks, a Rich progress bar and model summary, then :meth:`extra_callbacks`."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        given = trainer_config.get("callbacks") or []
        # one callback given on the command line (--trainer.callbacks CLASS) arrives alone, not in a list
        callbacks = list(given) if isinstance(given, list | tuple) else [given]
        if trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar(leave=True))
        if trainer_config.get("enable_model_summary") is not False:
            callbacks.append(RichModelSummary(max_depth=2))
        ckpt_path = self.options.get("ckpt_path") if self.subcommand else None
        if ckpt_path:  # one line now, not a state-dict traceback once the data is read
            check_fits(self.model, ckpt_path)
        return super().instantiate_trainer(callbacks=callbacks + self.extra_callbacks(), **kwargs)


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
