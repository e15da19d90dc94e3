"""What the figure callbacks cost: epoch time of a recipe with and without them, side by side in one process.

    python benchmarks/figures_overhead.py                      # lenet5_fashionmnist, 5 pairs of 1-epoch fits
    python benchmarks/figures_overhead.py --pairs 5 --epochs 5 --every_n_epochs 5   # a recipe's average epoch
    python benchmarks/figures_overhead.py --recipe convnet_fashionmnist --pairs 3

Each pair trains the recipe's task for one epoch on its data (training and validation, as in the recipe: same
network, batch size, augmentation, validation split) twice, once with the recipe's figure callbacks and once
without, in alternating order (ABBA) so that drift in the machine's load falls on both alike. Both arms log to an
offline W&B run, so sending the images is counted. A one-epoch fit is its own last epoch, so with the default
``--every_n_epochs 1`` the callbacks draw in every timed epoch: the ratio is the cost of an epoch that draws, an
upper bound on a recipe's average (the recipes draw every 5 epochs). The epoch time runs from the start of the
training epoch to its end, after validation and the figures; start-up, data loading and W&B start-up are left out.

Prints each pair and the median ratio (with figures / without).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.profilers import SimpleProfiler

from zoo.cli.environment import hardware
from zoo.cli.recipes import find_recipe, read_recipe


class EpochTimer(L.Callback):
    """Wall time of each training epoch, validation and epoch-end callbacks included."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def instantiate(entry: dict[str, Any], **extra: Any) -> Any:
    """An object from a recipe's ``class_path``/``init_args`` entry."""
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**{**(entry.get("init_args") or {}), **extra})


def one_epoch(
    recipe: dict[str, Any], data: Any, callbacks: list[L.Callback], folder: Path, epochs: int = 1
) -> tuple[float, float]:
    """Train the recipe's task for ``epochs`` epochs (one by default) with ``callbacks``.

    Returns:
        The epochs' summed wall time, and the time spent inside the hooks of ``callbacks`` (Lightning's simple
        profiler), in seconds.
    """
    timer = EpochTimer()
    profiler = SimpleProfiler()
    logger = WandbLogger(project="zoo-benchmark", save_dir=str(folder), offline=True)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[timer, *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(folder),
        profiler=profiler,
    )
    task = instantiate(recipe["model"])
    trainer.fit(task, datamodule=data)
    logger.experiment.finish()
    names = tuple(f"[Callback]{type(callback).__qualname__}" for callback in callbacks)
    inside = sum(
        sum(durations) for key, durations in profiler.recorded_durations.items() if key.startswith(names)
    )
    return sum(timer.seconds), inside


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="lenet5_fashionmnist")
    parser.add_argument("--pairs", type=int, default=5, help="pairs of fits (with, without)")
    parser.add_argument("--every_n_epochs", type=int, default=1, help="passed to every figure callback")
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="epochs per fit: with --every_n_epochs 5 and 5 epochs, a recipe's average",
    )
    parser.add_argument("--data_root", default=None, help="the dataset folder (default: the recipe's search)")
    args = parser.parse_args()

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    recipe = read_recipe(find_recipe(args.recipe))
    figure_entries = [
        entry for entry in recipe["trainer"].get("callbacks") or [] if entry["class_path"].startswith("zoo.")
    ]
    if not figure_entries:
        parser.error(f"{args.recipe} turns on no zoo figure callbacks")
    data_entry = dict(recipe["data"])
    if args.data_root:
        data_entry["init_args"] = {**data_entry.get("init_args", {}), "root": args.data_root}
    data = instantiate(data_entry)  # read once, shared by every fit
    data.setup("fit")
    print(f"{args.recipe}: {', '.join(e['class_path'].rsplit('.', 1)[1] for e in figure_entries)}, "
          f"every_n_epochs={args.every_n_epochs}, {args.epochs} epoch(s) a fit")  # fmt: skip
    print(f"machine: {hardware()}, torch {torch.__version__}")
    ratios, shares = [], []
    with tempfile.TemporaryDirectory() as scratch:
        one_epoch(recipe, data, [], Path(scratch) / "warm-up")  # first-run costs (allocator, caches) left out
        for pair in range(args.pairs):
            times: dict[bool, float] = {}
            inside = 0.0
            for with_figures in (False, True) if pair % 2 == 0 else (True, False):
                L.seed_everything(pair, verbose=False)
                callbacks = [instantiate(e, every_n_epochs=args.every_n_epochs) for e in figure_entries]
                folder = Path(scratch) / f"{pair}-{with_figures}"
                used = callbacks if with_figures else []
                times[with_figures], hooks = one_epoch(recipe, data, used, folder, args.epochs)
                inside += hooks
            ratios.append(times[True] / times[False])
            shares.append(inside / times[True])
            figures = sum(1 for _ in Path(scratch).glob(f"{pair}-True/**/figures/*.png"))
            print(f"pair {pair + 1}: without {times[False]:.2f} s, with {times[True]:.2f} s ({figures} figures, "
                  f"{inside:.3f} s inside the callbacks), ratio {ratios[-1]:.4f}", flush=True)  # fmt: skip
    median = statistics.median(ratios)
    print(f"median ratio with/without figures: {median:.4f} ({(median - 1) * 100:+.1f}% epoch time), "
          f"over {args.pairs} pairs; min {min(ratios):.4f}, max {max(ratios):.4f}")  # fmt: skip
    print(f"median time inside the figure callbacks: {statistics.median(shares) * 100:.2f}% of the epoch")


if __name__ == "__main__":
    main()
