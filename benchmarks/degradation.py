"""The degradation experiment of He et al. (2015): does a deeper plain network train worse than a shallower one?

    python benchmarks/degradation.py                          # plain20, plain56, resnet20, resnet56; 2 epochs each
    python benchmarks/degradation.py --epochs 5 --output docs/degradation.png
    python benchmarks/degradation.py --nets plain20 plain56 --epochs 1

Each network trains through ``python -m zoo.fit`` with its ``<net>_fashionmnist`` recipe, as shipped: the four
recipes share everything but the network (He et al.'s optimiser: SGD 0.1, momentum 0.9, weight decay 1e-4, batch
128; the rate divided by 10 at 1/2 and 3/4 of the run; pad + crop + flip), here all for the same ``--epochs``, so
for the same number of optimiser steps on the same batches (seed 0). Figures and W&B are off; the recipe's own
validation and test evaluation stay.

Training error is measured as He et al. plot it: on the augmented training batches as they are trained on, the
network in training mode, averaged over windows of ``--window`` steps. Validation error is the recipe's held-out
5,000 images at each epoch's end; test error that of the best checkpoint on the 10,000 test images.

Prints a table (final training error over the last epoch, best validation error, test error, fit wall time) and
draws the training-error curves, thin, with the validation errors as points, to a PNG (``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image, ImageDraw

from zoo.cli import main as zoo_main
from zoo.cli.environment import hardware
from zoo.figures.drawing import font
from zoo.figures.layers import OutputTap, labelled_logits

NETS = ("plain20", "plain56", "resnet20", "resnet56")
#: one colour per network: the plain nets in warm colours, the residual ones in cool colours, deeper is darker
COLOURS = {
    "plain20": (240, 140, 60),
    "plain56": (190, 30, 30),
    "resnet20": (80, 160, 230),
    "resnet56": (20, 60, 160),
}


class TrainingError(L.Callback):
    """Records the training error of every step (from the task's own forward pass) and the validation error of
    every epoch, into ``records`` (a class attribute, so the benchmark can read it after the CLI run)."""

    records: dict[str, Any] = {}

    def __init__(self) -> None:
        self.tap = OutputTap()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.tap.attach(pl_module.net)  # type: ignore[arg-type]
        TrainingError.records = {"steps": [], "wrong": [], "seen": [], "val": []}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        caught = labelled_logits(self.tap, batch, pl_module.num_classes)  # type: ignore[arg-type]
        if caught is None:
            return
        logits, labels = caught
        records = TrainingError.records
        records["steps"].append(trainer.global_step)
        records["wrong"].append(int((logits.argmax(1) != labels).sum()))
        records["seen"].append(len(labels))

    def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
        self.tap.take()  # validation outputs are not training error

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        accuracy = trainer.callback_metrics.get("val_acc")  # logged by the task at its validation epoch's end
        if trainer.sanity_checking or accuracy is None or trainer.state.fn != "fit":
            return
        TrainingError.records["val"].append((trainer.global_step, 1 - float(accuracy)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.tap.detach()


def windowed(records: dict[str, Any], window: int) -> list[tuple[int, float]]:
    """``(last step, error)`` of each run of ``window`` training steps."""
    points = []
    for start in range(0, len(records["steps"]) - window + 1, window):
        wrong = sum(records["wrong"][start : start + window])
        seen = sum(records["seen"][start : start + window])
        points.append((records["steps"][start + window - 1], wrong / seen))
    return points


def run(net: str, epochs: int, folder: Path, data_root: str | None) -> dict[str, Any]:
    """Fit ``<net>_fashionmnist`` for ``epochs`` epochs; its metrics.json and the recorded errors."""
    args = [
        "--recipe", f"{net}_fashionmnist", "--trainer.max_epochs", str(epochs),
        "--trainer.logger", "false", "--trainer.callbacks", "degradation.TrainingError",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(folder),
    ]  # fmt: skip
    if data_root:
        args += ["--data.init_args.root", data_root]
    if zoo_main("fit", args) != 0:
        raise SystemExit(f"{net}: the fit failed")
    (metrics_file,) = folder.glob(f"{net}_fashionmnist/*/metrics.json")
    # the CLI imported this file as the module `degradation`, whose class is not this script's `__main__` one
    recorder = importlib.import_module("degradation").TrainingError
    return {"metrics": json.loads(metrics_file.read_text()), "records": recorder.records}


def draw(results: dict[str, dict[str, Any]], window: int, title: str) -> Image.Image:
    """Training-error curves (lines) and validation errors (dots) of every network, on one chart."""
    width, height, left, right, top, bottom = 900, 560, 70, 150, 40, 50
    curves = {net: windowed(r["records"], window) for net, r in results.items()}
    last_step = max(step for points in curves.values() for step, _ in points)
    highest = max(err for r in results.values() for err in [e for _, e in windowed(r["records"], window)])
    y_max = min(1.0, max(0.05, round(highest * 1.1 + 0.005, 2)))
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    face = font(13)

    def at(step: float, error: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / last_step
        y = top + (height - top - bottom) * (1 - error / y_max)
        return x, y

    pen.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for tick in range(6):  # error axis: 6 gridlines
        error = y_max * tick / 5
        _, y = at(0, error)
        pen.line([left, y, width - right, y], fill=(225, 225, 225))
        pen.text((left - 8, y), f"{100 * error:.0f}%", fill=(0, 0, 0), font=face, anchor="rm")
    for tick in range(6):  # step axis
        step = last_step * tick / 5
        x, _ = at(step, 0)
        pen.text((x, height - bottom + 8), f"{step:.0f}", fill=(0, 0, 0), font=face, anchor="mt")
    pen.text(
        ((left + width - right) / 2, height - 16), "optimiser step", fill=(0, 0, 0), font=face, anchor="mm"
    )
    pen.text((left, 14), title, fill=(0, 0, 0), font=face, anchor="lm")
    for row, (net, points) in enumerate(curves.items()):
        colour = COLOURS.get(net, (0, 0, 0))
        pen.line([at(step, err) for step, err in points], fill=colour, width=2)
        for step, err in results[net]["records"]["val"]:
            x, y = at(step, err)
            pen.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour, outline=(0, 0, 0))
        y = top + 10 + 22 * row
        pen.line([width - right + 12, y, width - right + 40, y], fill=colour, width=3)
        pen.text((width - right + 46, y), net, fill=(0, 0, 0), font=face, anchor="lm")
    legend_y = top + 10 + 22 * len(curves) + 8
    pen.text((width - right + 12, legend_y), "line: training\ndot: validation", fill=(0, 0, 0), font=face)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs for every network (the same steps for all)"
    )
    parser.add_argument("--window", type=int, default=50, help="training steps averaged into one point")
    parser.add_argument("--output", type=Path, default=Path("degradation.png"), help="the PNG of the curves")
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    args = parser.parse_args()
    if args.output.exists():
        raise SystemExit(f"{args.output} exists; choose another --output (nothing is overwritten)")
    sys.path.insert(
        0, str(Path(__file__).resolve().parent)
    )  # so the CLI can import degradation.TrainingError
    print(f"machine: {hardware()}, torch {torch.__version__}; {args.epochs} epoch(s) each", flush=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for net in args.nets:
            started = time.perf_counter()
            results[net] = run(net, args.epochs, Path(scratch) / net, args.data_root)
            print(f"{net}: done in {time.perf_counter() - started:.0f} s", flush=True)
    print("\n| network | training error, last epoch | best validation error | test error | steps | fit |")
    print("|---|---|---|---|---|---|")
    for net, result in results.items():
        records, metrics = result["records"], result["metrics"]
        per_epoch = len(records["steps"]) // args.epochs
        last = slice(len(records["steps"]) - per_epoch, None)
        train_error = sum(records["wrong"][last]) / sum(records["seen"][last])
        best_val = min(err for _, err in records["val"])
        test_error = 1 - metrics["test"]["test_acc"]
        print(f"| {net} | {100 * train_error:.2f}% | {100 * best_val:.2f}% | {100 * test_error:.2f}% | "
              f"{metrics['global_step']} | {metrics['fit_seconds']:.0f} s |")  # fmt: skip
    title = f"Fashion-MNIST, {args.epochs} epoch(s) each, training error over {args.window}-step windows"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    draw(results, args.window, title).save(args.output)
    print(f"curves: {args.output}")


if __name__ == "__main__":
    main()
