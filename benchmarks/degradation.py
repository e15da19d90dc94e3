"""The degradation experiment of He et al. (2015): does a deeper plain network train worse than a shallower one?

    python benchmarks/degradation.py                          # plain20, plain56, resnet20, resnet56; 2 epochs each
    python benchmarks/degradation.py --epochs 5 --output docs/degradation.png
    python benchmarks/degradation.py --nets plain20 plain56 --epochs 1
    python benchmarks/degradation.py --from_json docs/degradation.json --output curves.png   # redraw, no training
    python benchmarks/degradation.py --from_json plain.json resnets.json --output all.png     # two runs in one chart

Each network trains through ``python -m zoo.fit`` with its ``<net>_fashionmnist`` recipe, as shipped: the four
recipes share everything but the network (He et al.'s optimiser: SGD 0.1, momentum 0.9, weight decay 1e-4, batch
128; the rate divided by 10 at 1/2 and 3/4 of the run; pad + crop + flip), here all for the same ``--epochs``, so
for the same number of optimiser steps on the same batches (seed 0). Figures and W&B are off; the recipe's own
validation and test evaluation stay.

Training error is measured as He et al. plot it: on the augmented training batches as they are trained on, the
network in training mode, averaged over windows of ``--window`` steps. Validation error is the recipe's held-out
5,000 images at each epoch's end; test error that of the best checkpoint on the 10,000 test images.

Prints a table (final training error over the last epoch, best validation error, test error, fit wall time) and
draws the training-error curves, with the validation errors as points, to a PNG (``--output``) and an SVG beside
it (``charts.py``). The numbers behind them, every step's count of errors and every validation error with each
run's ``metrics.json``, are stored as JSON beside the chart, so ``--from_json`` can print and draw them again.
Given the JSON of several runs of the same length (the plain nets in one run, the residual ones in another), it
draws them in one chart and stores their numbers, together, beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from charts import Series, line_chart, read_stored, save
from matplotlib.figure import Figure

from zoo.cli import main as zoo_main
from zoo.cli.environment import hardware
from zoo.figures.layers import OutputTap, labelled_logits

NETS = ("plain20", "plain56", "resnet20", "resnet56")
#: one colour per network: the plain nets in warm colours, the residual ones in cool colours, deeper is darker
COLOURS = {"plain20": "#f08c3c", "plain56": "#be1e1e", "resnet20": "#50a0e6", "resnet56": "#143ca0"}


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


def chart(results: dict[str, dict[str, Any]], window: int, title: str) -> Figure:
    """Training-error curves (lines) and validation errors (dots) of every network, in percent, on one chart."""
    training, validation = [], []
    for net, result in results.items():
        steps, errors = zip(*windowed(result["records"], window), strict=True)
        training.append(Series(f"{net}, training", steps, [100 * e for e in errors], COLOURS.get(net)))
        val_steps, val_errors = zip(*result["records"]["val"], strict=True)
        validation.append(
            Series(
                f"{net}, validation",
                val_steps,
                [100 * e for e in val_errors],
                COLOURS.get(net),
                line=False,
                marker="o",
            )
        )
    return line_chart(
        training + validation,  # two legend columns: training, then validation
        title=title,
        x_label="optimiser step (batches)",
        y_label="error (%)",
        legend_columns=2,
    )


def table(results: dict[str, dict[str, Any]], epochs: int) -> None:
    """Print a Markdown row a network: training error over the last epoch, best validation and test error."""
    print("\n| network | training error, last epoch | best validation error | test error | steps | fit |")
    print("|---|---|---|---|---|---|")
    for net, result in results.items():
        records, metrics = result["records"], result["metrics"]
        per_epoch = len(records["steps"]) // epochs
        last = slice(len(records["steps"]) - per_epoch, None)
        train_error = sum(records["wrong"][last]) / sum(records["seen"][last])
        best_val = min(err for _, err in records["val"])
        test_error = 1 - metrics["test"]["test_acc"]
        print(f"| {net} | {100 * train_error:.2f}% | {100 * best_val:.2f}% | {100 * test_error:.2f}% | "
              f"{metrics['global_step']} | {metrics['fit_seconds']:.0f} s |")  # fmt: skip


def measure(nets: list[str], epochs: int, data_root: str | None) -> dict[str, dict[str, Any]]:
    """Train every network in ``nets`` for ``epochs`` epochs; each one's metrics.json and recorded errors."""
    # so the CLI can import degradation.TrainingError
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(f"machine: {hardware()}, torch {torch.__version__}; {epochs} epoch(s) each", flush=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for net in nets:
            started = time.perf_counter()
            results[net] = run(net, epochs, Path(scratch) / net, data_root)
            print(f"{net}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return results


def merged(runs: list[dict[str, Any]], paths: list[Path]) -> dict[str, Any]:
    """The stored numbers of several runs as those of one: the networks of all, in :data:`NETS`' order. The runs
    must have trained for the same epochs and be drawn with the same window, and no network may appear twice; a
    value the runs do not share (their dates, say) is kept as the list of each run's, in the order given.

    Raises:
        ValueError: the runs differ in epochs or window, or a network appears in more than one.
    """
    for key in ("epochs", "window"):
        if len({run[key] for run in runs}) > 1:
            found = ", ".join(f"{path}: {run[key]}" for path, run in zip(paths, runs, strict=True))
            raise ValueError(f"the runs differ in {key} ({found}); one chart takes runs of one length")
    nets = [net for run in runs for net in run["results"]]
    if twice := sorted({net for net in nets if nets.count(net) > 1}):
        raise ValueError(f"{', '.join(twice)} appear(s) in more than one of the runs given")
    results = {net: run["results"][net] for net in NETS for run in runs if net in run["results"]}
    about = {key: [run.get(key) for run in runs] for key in runs[0] if key != "results"}
    # what every run shares once; where they differ (the date, say), each run's value in the order given
    shared = {key: values[0] if len(set(map(str, values))) == 1 else values for key, values in about.items()}
    return {**shared, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs for every network (the same steps for all)"
    )
    parser.add_argument("--window", type=int, default=50, help="training steps averaged into one point")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("degradation.png"),
        help="the PNG of the curves; SVG, JSON beside it",
    )
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    parser.add_argument(
        "--from_json",
        type=Path,
        nargs="+",
        default=None,
        help="print and draw the numbers one or more runs stored (of the same epochs and window); no training",
    )
    args = parser.parse_args()
    written = [args.output, args.output.with_suffix(".svg")]
    if args.from_json is None or len(args.from_json) > 1:
        written.append(args.output.with_suffix(".json"))
    if taken := [str(path) for path in written if path.exists()]:
        parser.error(f"{', '.join(taken)} exist(s); choose another --output (nothing is overwritten)")
    if args.from_json is not None:
        try:
            runs = [
                read_stored(path, ("epochs", "window", "results"), "degradation.py")
                for path in args.from_json
            ]
            stored = merged(runs, args.from_json)
        except ValueError as error:
            parser.error(str(error))
        epochs, window, results = stored["epochs"], stored["window"], stored["results"]
        if len(args.from_json) > 1:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.with_suffix(".json").write_text(json.dumps(stored) + "\n")
    else:
        epochs, window, results = args.epochs, args.window, measure(args.nets, args.epochs, args.data_root)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        stored = {
            "machine": hardware(),
            "torch": torch.__version__,
            "date": dt.date.today().isoformat(),
            "epochs": epochs,
            "window": window,
            "results": results,
        }
        args.output.with_suffix(".json").write_text(json.dumps(stored) + "\n")
    table(results, epochs)
    title = (
        f"Fashion-MNIST, {epochs} epoch(s) each: training error over {window}-step windows, validation error"
    )
    print("chart:", *save(chart(results, window, title), args.output))


if __name__ == "__main__":
    main()
