"""The values of a Lightning command's options, checked before anything is built or written.

jsonargparse checks types (a whole number where one is declared); this module checks what a type cannot say, and
answers in one line that names the key, the value and what it must be, instead of a traceback from inside PyTorch
or Lightning once the run has started (or a run that trains on nonsense without a word): ranges (a learning rate
above 0, a momentum below 1, a batch of at least one image, a fraction from 0 to 1), and, through
:mod:`zoo.cli.host`, the devices and precision Lightning is asked for and the folders a run writes to.

A rule is found by the option's name, so that one rule covers every class taking the option (``batch_size`` of
every DataModule, ``lr`` of every optimiser). Only zoo's and PyTorch's classes are checked by name: a class of the
user's may mean something else by the same name. What no rule covers, an optimiser's or a schedule's own refusal
of its options, is met by building it once on a stand-in parameter (:func:`check_optimization`), so that its
``ValueError`` is one line before the run starts, not a traceback after it.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.cli.host import check_host, check_writable
from zoo.errors import ZooError

__all__ = ["Range", "check_optimization", "check_options", "check_trainer", "check_values"]

#: seeds numpy (and so Lightning's seed_everything) takes
_SEEDS = (0, 2**32 - 1)


@dataclass(frozen=True)
class Range:
    """The values an option may take: numbers from ``low`` to ``high``, whole or not, with special values.

    Args:
        low: the smallest value (None: no bound).
        high: the largest value (None: no bound).
        low_open: ``low`` itself is excluded.
        high_open: ``high`` itself is excluded.
        whole: only whole numbers.
        also: values taken besides the range (``-1`` for "no limit").
        meaning: what the special values mean, for the message (``-1 for no limit``).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False
    also: tuple[Any, ...] = ()
    meaning: str = ""

    def accepts(self, value: object) -> bool:
        """Whether ``value`` (a number; None is left to the option's type) is in the range."""
        if value in self.also and not isinstance(value, bool):
            return True
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or (self.whole and not float(value).is_integer()):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        """The range in words: ``a whole number of at least 1``, ``a number from 0 to 1 (1 excluded)``."""
        kind = "a whole number" if self.whole else "a number"
        if self.low is not None and self.high is not None:
            text = f"{kind} from {_number(self.low)} to {_number(self.high)}"
            excluded = [_number(b) for b, o in ((self.low, self.low_open), (self.high, self.high_open)) if o]
            if excluded:
                text += f" ({' and '.join(excluded)} excluded)"
        elif self.low is not None:
            text = (
                f"{kind} above {_number(self.low)}"
                if self.low_open
                else f"{kind} of at least {_number(self.low)}"
            )
        elif self.high is not None:
            text = f"{kind} of at most {_number(self.high)}"
        else:
            text = f"a finite {kind.removeprefix('a ')}"
        return f"{text}, or {self.meaning}" if self.meaning else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


COUNT = Range(low=1, whole=True)
NONNEGATIVE_COUNT = Range(low=0, whole=True)
POSITIVE = Range(low=0, low_open=True)
NONNEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1)
BELOW_ONE = Range(low=0, high=1, high_open=True)

#: rules for the options of zoo's classes and PyTorch's optimisers and schedules, by option name
OPTION_RULES: Mapping[str, Range] = {
    # sizes and counts, of data, networks and the figures callbacks draw
    **dict.fromkeys(
        ("batch_size", "eval_batch_size", "num_classes", "in_channels", "embedding_dim", "pool_size", "image_size",
         "size", "max_size", "crop_size", "eval_size", "predict_size", "style_size", "num_train", "num_val",
         "num_test", "train_per_class", "min_objects", "max_objects", "every_n_epochs", "figure_every_n_epochs",
         "num_images", "max_channels", "max_filters", "min_side", "max_side", "top_k"),
        COUNT,
    ),
    **dict.fromkeys(
        ("num_workers", "pad", "reconstructions", "unfreeze_at_epoch", "figure_images", "num_mistakes",
         "keep_classes"),
        NONNEGATIVE_COUNT,
    ),
    # losses, their weights, the data's noise and normalisation
    **dict.fromkeys(("box_weight", "aux_weight", "content_weight", "style_weight", "tv_weight"), NONNEGATIVE),
    **dict.fromkeys(("label_smoothing", "noise", "mean", "score_threshold", "threshold"), FRACTION),
    **dict.fromkeys(("std", "scale_range"), POSITIVE),
    # optimisers (torch.optim); alpha is RMSprop's smoothing constant, and the overlays' opacity
    **dict.fromkeys(("lr", "base_lr", "max_lr"), POSITIVE),
    **dict.fromkeys(("weight_decay", "eps", "lr_decay", "initial_accumulator_value"), NONNEGATIVE),
    **dict.fromkeys(("dampening", "alpha", "rho"), FRACTION),
    **dict.fromkeys(("momentum", "betas"), BELOW_ONE),
    # schedules (torch.optim.lr_scheduler, zoo.tasks.schedules)
    **dict.fromkeys(("gamma", "power"), POSITIVE),
    **dict.fromkeys(("step_size", "T_max", "T_0", "T_mult", "total_steps", "total_iters"), COUNT),
    **dict.fromkeys(("eta_min", "min_lr"), NONNEGATIVE),
    **dict.fromkeys(("patience", "cooldown"), NONNEGATIVE_COUNT),
    **dict.fromkeys(("final_fraction", "end_factor", "factor"), FRACTION),
    **dict.fromkeys(("warmup_factor", "start_factor"), Range(low=0, high=1, low_open=True)),
    "warmup": BELOW_ONE,
}  # fmt: skip
#: rules that differ for one class (its name, then the option's)
CLASS_RULES: Mapping[tuple[str, str], Range] = {
    # torchmetrics' multiclass metrics need two classes at least; a one-class classifier learns nothing
    ("ClassificationTask", "num_classes"): Range(low=2, whole=True),
    # counts the background too (torchvision's convention)
    ("DetectionTask", "num_classes"): Range(low=2, whole=True),
    ("SegmentationTask", "num_classes"): Range(low=2, whole=True),
    ("FolderDataModule", "image_size"): Range(low=8, whole=True),
    ("ImagesDataModule", "size"): Range(low=16, whole=True),
    ("ImagesDataModule", "predict_size"): Range(low=16, whole=True),
    ("ReduceLROnPlateau", "factor"): BELOW_ONE,
    ("ReduceLROnPlateau", "threshold"): NONNEGATIVE,
}
#: the Trainer's options and their ranges (the rest are typed enough, or checked by check_host)
TRAINER_RULES: Mapping[str, Range] = {
    "max_epochs": Range(low=0, whole=True, also=(-1,), meaning="-1 for no limit"),
    "min_epochs": NONNEGATIVE_COUNT,
    "max_steps": Range(low=0, whole=True, also=(-1,), meaning="-1 for no limit"),
    "min_steps": NONNEGATIVE_COUNT,
    "num_nodes": COUNT,
    "check_val_every_n_epoch": COUNT,
    "num_sanity_val_steps": Range(low=0, whole=True, also=(-1,), meaning="-1 for the whole validation set"),
    "log_every_n_steps": NONNEGATIVE_COUNT,
    "accumulate_grad_batches": COUNT,
    "gradient_clip_val": NONNEGATIVE,
    "reload_dataloaders_every_n_epochs": NONNEGATIVE_COUNT,
}
#: the Trainer's options that take a count of batches (a whole number) or a fraction of them (a float)
_BATCH_SHARES = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                 "overfit_batches")  # fmt: skip
#: module prefixes of the classes whose options are checked by name
_CHECKED_MODULES = ("zoo.", "torch.optim.")


def _refuse(key: str, value: object, wanted: str) -> ZooError:
    return ZooError(f"{key} must be {wanted}, got {value!r}")


def _check(key: str, value: object, rule: Range) -> None:
    """Check one value (each item of a list or tuple) against ``rule``; None is left to the option's type."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            if item is not None and not rule.accepts(item):
                raise ZooError(f"each value of {key} must be {rule.describe()}, got {list(value)!r}")
        return
    if isinstance(value, int | float) and not rule.accepts(value):
        raise _refuse(key, value, rule.describe())


def _not_finite(value: object, path: str = "") -> tuple[str, float] | None:
    """The place (``.key`` or ``[index]`` below the option) and value of a NaN or infinity in ``value``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = (
        value.items()
        if isinstance(value, Mapping)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    for key, item in items:
        found = _not_finite(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


def _items(init_args: object) -> dict[str, Any]:
    if init_args is None:
        return {}
    if hasattr(init_args, "as_dict"):
        return dict(init_args.as_dict())
    if isinstance(init_args, Mapping):
        return dict(init_args)
    return dict(vars(init_args))


def check_options(key: str, class_path: str, init_args: object) -> None:
    """Check the options of one class, named in messages as ``<key>.init_args.<option>``.

    Args:
        key: where the class is configured, as a flag: ``--model``, ``--optimizer``, ``--trainer.callbacks``.
        class_path: the class's import path; only zoo's and PyTorch's optimisers and schedules are checked.
        init_args: its options (a jsonargparse ``Namespace`` or a mapping).

    Raises:
        ZooError: the first option out of its range, in one line.
    """
    if not class_path.startswith(_CHECKED_MODULES):
        return
    name = class_path.rpartition(".")[2]
    options = _items(init_args)

    def named(option: str) -> str:  # a class in a list (trainer.callbacks) has no key of its own
        listed = key in ("--trainer.callbacks", "--trainer.plugins")
        return f"{option} of {class_path} in {key}" if listed else f"{key}.init_args.{option}"

    for option, value in options.items():
        rule = CLASS_RULES.get((name, option)) or OPTION_RULES.get(option)
        if rule is not None:
            _check(named(option), value, rule)
        where = _not_finite(value)
        if where is not None:  # NaN or infinity, anywhere in the option (a network's model_kwargs too)
            raise _refuse(named(option) + where[0], where[1], "a finite number")
    val_size = options.get("val_size")
    if val_size is not None and not isinstance(val_size, bool):  # a count of images, or a fraction of them
        wanted = "a whole number of images (0 or more) or a fraction of them, from 0 to 1 (1 excluded)"
        if isinstance(val_size, float) and not BELOW_ONE.accepts(val_size):
            raise _refuse(named("val_size"), val_size, wanted)
        if isinstance(val_size, int) and val_size < 0:
            raise _refuse(named("val_size"), val_size, wanted)
    if options.get("nesterov") and (not options.get("momentum") or options.get("dampening")):
        raise ZooError(
            f"{named('nesterov')} needs a momentum above 0 and no dampening, got momentum "
            f"{options.get('momentum')!r} and dampening {options.get('dampening', 0)!r}"
        )
    low_high = options.get("scale_range")
    if isinstance(low_high, list | tuple) and len(low_high) == 2 and low_high[0] > low_high[1]:
        raise ZooError(f"{named('scale_range')} must be (low, high) with low <= high, got {list(low_high)}")


def _classes(value: object) -> list[tuple[str, object]]:
    """``(class_path, init_args)`` of a configured class, or of each of a list of them."""
    values = value if isinstance(value, list | tuple) else [value]
    found = []
    for item in values:
        class_path = getattr(item, "class_path", None)
        if isinstance(class_path, str):
            found.append((class_path, getattr(item, "init_args", None)))
    return found


def check_trainer(trainer: Any) -> None:
    """Check the Trainer's counts, limits and fractions (see :data:`TRAINER_RULES`) and its callbacks' options.

    Raises:
        ZooError: the first value out of its range, in one line.
    """
    for option, rule in TRAINER_RULES.items():
        _check(f"--trainer.{option}", trainer.get(option), rule)
    max_epochs, min_epochs = trainer.get("max_epochs"), trainer.get("min_epochs")
    if isinstance(max_epochs, int) and isinstance(min_epochs, int) and 0 <= max_epochs < min_epochs:
        raise ZooError(
            f"--trainer.min_epochs ({min_epochs}) must not exceed --trainer.max_epochs ({max_epochs})"
        )
    for option in _BATCH_SHARES:
        value = trainer.get(option)
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            continue
        if isinstance(value, float) and FRACTION.accepts(value):
            continue
        raise _refuse(
            f"--trainer.{option}",
            value,
            "a whole number of batches (0 or more) or a fraction of them from 0 to 1",
        )
    interval = trainer.get("val_check_interval")
    if interval is not None and not (
        (isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1)
        or (isinstance(interval, float) and Range(low=0, high=1, low_open=True).accepts(interval))
    ):
        raise _refuse(
            "--trainer.val_check_interval",
            interval,
            "a whole number of training batches (1 or more) or a fraction of an epoch above 0 and at most 1",
        )
    fast = trainer.get("fast_dev_run")
    if isinstance(fast, int) and not isinstance(fast, bool) and fast < 0:
        raise _refuse("--trainer.fast_dev_run", fast, "true, false or a whole number of batches (0 or more)")
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise _refuse("--trainer.gradient_clip_algorithm", algorithm, "'norm' or 'value'")
    for key in ("callbacks", "logger", "plugins"):
        for class_path, init_args in _classes(trainer.get(key)):
            check_options(f"--trainer.{key}", class_path, init_args)


def _class_of(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def check_optimization(optimizer: Any, lr_scheduler: Any) -> None:
    """Build the configured optimiser and schedule once on a stand-in parameter, and take a few steps, so that
    their own refusal of an option is one line now rather than a traceback once training starts.

    Args:
        optimizer: the config's ``optimizer`` (``class_path`` and ``init_args``), or None.
        lr_scheduler: the config's ``lr_scheduler``, or None.

    Raises:
        ZooError: the optimiser or the schedule refuses its options.
    """
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    built: torch.optim.Optimizer = torch.optim.SGD([parameter], lr=0.1)
    for key, config in (("--optimizer", optimizer), ("--lr_scheduler", lr_scheduler)):
        for class_path, init_args in _classes(config):
            cls = _class_of(class_path)
            if cls is None:
                continue  # jsonargparse has said so already
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if key == "--optimizer":
                        built = cls([parameter], **_items(init_args))
                    else:
                        _step(cls(built, **_items(init_args)), built)
            except (ValueError, TypeError, ZeroDivisionError, RuntimeError) as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise ZooError(
                    f"{key} {class_path} refuses its options ({reason}); fix {key}.init_args"
                ) from error


def _step(schedule: Any, optimizer: Any) -> None:
    """Take a few steps of ``schedule``, as a short run would (a schedule that needs a metric is not stepped)."""
    set_total_steps = getattr(schedule, "set_total_steps", None)
    if callable(set_total_steps):
        set_total_steps(10)
    if "metrics" in inspect.signature(schedule.step).parameters:  # ReduceLROnPlateau
        return
    for _ in range(3):
        optimizer.step()
        schedule.step()


def check_values(options: Any, *, command: str, auto_precision: bool = False) -> None:
    """Check a Lightning command's parsed options before LightningCLI instantiates anything.

    Args:
        options: the subcommand's config (a jsonargparse ``Namespace``).
        command: ``fit``, ``validate``, ``test`` or ``predict``; only ``fit`` writes a run folder.
        auto_precision: zoo chooses the precision by measurement: it is not checked against the host.

    Raises:
        ZooError: the first value that cannot work, in one line naming the key, the value and what to give.
    """
    seed = options.get("seed_everything")
    if isinstance(seed, int) and not isinstance(seed, bool) and not _SEEDS[0] <= seed <= _SEEDS[1]:
        raise _refuse(
            "--seed_everything",
            seed,
            f"a whole number from {_SEEDS[0]} to {_SEEDS[1]}, or true for a random one",
        )
    _check("--save_every_n_steps", options.get("save_every_n_steps"), Range(low=0, whole=True, meaning=""))
    trainer = options.get("trainer")
    if trainer is not None:
        check_trainer(trainer)
        check_host(trainer, auto_precision=auto_precision)
    for key in ("model", "data", "optimizer", "lr_scheduler"):
        for class_path, init_args in _classes(options.get(key)):
            check_options(f"--{key}", class_path, init_args)
    check_optimization(options.get("optimizer"), options.get("lr_scheduler"))
    if command == "fit" and trainer is not None:
        if options.get("run_dir"):
            check_writable(Path(options.run_dir), "--run_dir")
        elif trainer.get("default_root_dir"):
            check_writable(Path(trainer.default_root_dir), "--trainer.default_root_dir")
