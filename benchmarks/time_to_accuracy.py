"""Time to accuracy on Fashion-MNIST: how long a recipe made for speed takes to reach a test accuracy.

    python benchmarks/time_to_accuracy.py                                  # fast_fashionmnist, its epochs, 3 seeds
    python benchmarks/time_to_accuracy.py --epochs 4 16 --seeds 5 --threads 2
    python benchmarks/time_to_accuracy.py --recipe lenet5_fashionmnist --epochs 20 --seeds 1
    python benchmarks/time_to_accuracy.py --epochs 4 20 --seeds 3 --precision 32-true   # float32 forced
    python benchmarks/time_to_accuracy.py --epochs 4 20 --seeds 3 --output docs/time_to_accuracy.png
    python benchmarks/time_to_accuracy.py --from_json docs/time_to_accuracy.json --output again.png  # no training

As airbench measures CIFAR-10, a run has a fixed length chosen in advance; the test set is looked at once, at the
end, never to decide when to stop. For each ``--epochs`` value the recipe is trained through ``python -m zoo.fit``
(seeds 0, 1, ...) with W&B, figures and the progress bar off and ``--threads`` CPU threads (zoo's ``--threads``);
``--precision`` forces a precision (``--trainer.precision``), the recipe's choice otherwise. The time is the fit's
wall time (every training step; the recipe's own validation, if it has any; no start-up, no data reading),
read from the run's ``metrics.json``; accuracy is the test accuracy of the model the run ends with.

Prints, for each length: the time (median and longest over seeds), the test accuracy (mean, min and max over
seeds), and whether the mean reaches each ``--targets`` accuracy with every run within its time, as
``accuracy:seconds`` pairs (default 0.925:60 and 0.94:600: 92.5% within a minute and 94.0% within ten minutes, on
2 CPU cores). With ``--output``, also draws every run's test accuracy against its time, with the targets, to a PNG and an SVG beside
it (``charts.py``), and stores the runs' numbers as JSON beside them, which ``--from_json`` prints and draws again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from charts import Series, line_chart, read_stored, save
from matplotlib.figure import Figure

from zoo.cli import main
from zoo.cli.environment import hardware


def fit_once(
    recipe: str,
    epochs: int | None,
    seed: int,
    folder: Path,
    data_root: str | None,
    *,
    threads: int,
    precision: str | None,
) -> dict:
    """One fit of ``recipe`` with ``seed``, for ``epochs`` epochs (None: the recipe's own), on ``threads`` threads
    and in ``precision`` (None: the recipe's choice); its metrics.json."""
    args = [
        "--recipe", recipe, "--seed_everything", str(seed), "--trainer.logger", "false", "--threads", str(threads),
        "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(folder),
    ]  # fmt: skip
    if epochs is not None:
        args += ["--trainer.max_epochs", str(epochs)]
    if data_root:
        args += ["--data.init_args.root", data_root]
    if precision:
        args += ["--trainer.precision", precision]
    if main("fit", args) != 0:
        raise SystemExit(f"{recipe}: the fit with seed {seed} failed")
    (metrics_file,) = folder.glob("*/*/metrics.json")
    return json.loads(metrics_file.read_text())


def measure(
    recipe: str,
    lengths: list[int | None],
    seeds: int,
    data_root: str | None,
    *,
    threads: int,
    precision: str | None,
) -> list[dict[str, Any]]:
    """Fit ``recipe`` with seeds 0 to ``seeds - 1`` for each of ``lengths`` epochs (None: the recipe's own); a
    record of every run."""
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for epochs in lengths:
            for seed in range(seeds):
                metrics = fit_once(recipe, epochs, seed, Path(scratch) / f"{epochs}-{seed}", data_root,
                                   threads=threads, precision=precision)  # fmt: skip
                runs.append(
                    {
                        "epochs": metrics["epochs"],
                        "seed": seed,
                        "test_acc": metrics["test"]["test_acc"],
                        "fit_seconds": metrics["fit_seconds"],
                        "precision": metrics.get("precision"),
                    }
                )
                print(f"{recipe}, {metrics['epochs']} epochs, seed {seed}: test accuracy "
                      f"{100 * runs[-1]['test_acc']:.2f}% after {runs[-1]['fit_seconds']:.1f} s "
                      f"({runs[-1]['precision']})", flush=True)  # fmt: skip
    return runs


def summary(runs: list[dict[str, Any]]) -> list[tuple[int, float, float, float, float]]:
    """``(epochs, mean accuracy, lowest, highest, median seconds)`` of each run length, in the runs' order."""
    rows = []
    for epochs in dict.fromkeys(run["epochs"] for run in runs):
        accuracies = [run["test_acc"] for run in runs if run["epochs"] == epochs]
        seconds = statistics.median(run["fit_seconds"] for run in runs if run["epochs"] == epochs)
        rows.append((epochs, statistics.mean(accuracies), min(accuracies), max(accuracies), seconds))
    return rows


def table(results: dict[str, Any]) -> None:
    """Print a Markdown row a run length: mean test accuracy, median time, and the targets it reaches."""
    seeds = len({run["seed"] for run in results["runs"]})
    print(f"\n| epochs | test accuracy, mean of {seeds} (min-max) | fit wall time (median, max) | reaches |")
    print("|---|---|---|---|")
    for epochs, mean, low, high, seconds in summary(results["runs"]):
        longest = max(run["fit_seconds"] for run in results["runs"] if run["epochs"] == epochs)
        reached = [  # by the mean over seeds, every run within the time
            f"{100 * a:.1f}% in {s:.0f} s" for a, s in results["targets"] if mean >= a and longest <= s
        ]
        print(f"| {epochs} | {100 * mean:.2f}% ({100 * low:.2f}-{100 * high:.2f}) | {seconds:.1f} s, {longest:.1f} s | "
              f"{', '.join(reached) or 'no target'} |")  # fmt: skip


def chart(results: dict[str, Any]) -> Figure:
    """Every run's test accuracy against its fit time, the mean of each run length, and the targets."""
    runs, rows, targets = results["runs"], summary(results["runs"]), results["targets"]
    return line_chart(
        [
            Series(
                "runs (one a seed)",
                [run["fit_seconds"] for run in runs],
                [100 * run["test_acc"] for run in runs],
                "#50a0e6",
                line=False,
                marker="o",
            ),
            Series(
                "mean over seeds", [r[4] for r in rows], [100 * r[1] for r in rows], "#143ca0", marker="s"
            ),
            Series(
                "targets (accuracy within a time)",
                [seconds for _, seconds in targets],
                [100 * accuracy for accuracy, _ in targets],
                "#be1e1e",
                line=False,
                marker="D",
            ),
        ],
        title=f"{results['recipe']}: test accuracy against training time",
        x_label="fit wall time (s)",
        y_label="test accuracy (%)",
        y_from_zero=False,
    )


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="fast_fashionmnist")
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=None, help="run lengths (default: the recipe's)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="runs per length, seeds 0, 1, ...")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument(
        "--targets", nargs="+", default=["0.925:60", "0.94:600"], help="accuracy:seconds pairs"
    )
    parser.add_argument(
        "--precision", default=None, help="force this --trainer.precision (default: the recipe's choice)"
    )
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="a PNG of accuracy against time; SVG and JSON beside it"
    )
    parser.add_argument(
        "--from_json", type=Path, default=None, help="print and draw the runs a JSON stored; no training"
    )
    args = parser.parse_args()
    written = [] if args.output is None else [args.output, args.output.with_suffix(".svg")]
    if args.output is not None and args.from_json is None:
        written.append(args.output.with_suffix(".json"))
    if taken := [str(path) for path in written if path.exists()]:
        parser.error(f"{', '.join(taken)} exist(s); choose another --output (nothing is overwritten)")
    if args.from_json is not None:
        try:
            results = read_stored(args.from_json, ("runs",), "time_to_accuracy.py")
        except ValueError as error:
            parser.error(str(error))
    else:
        torch.set_num_threads(args.threads)
        capability = torch.backends.cpu.get_cpu_capability()
        print(f"machine: {hardware()}, CPU capability {capability}, torch {torch.__version__}", flush=True)
        results = {
            "recipe": args.recipe,
            "machine": hardware(),
            "cpu_capability": capability,
            "precision": args.precision or "the recipe's choice",
            "torch": torch.__version__,
            "date": dt.date.today().isoformat(),
            "threads": args.threads,
            "targets": [[float(a), float(s)] for a, s in (t.split(":") for t in args.targets)],
            "runs": measure(
                args.recipe,
                args.epochs or [None],
                args.seeds,
                args.data_root,
                threads=args.threads,
                precision=args.precision,
            ),
        }
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    table(results)
    if args.output is not None:
        print("chart:", *save(chart(results), args.output))


if __name__ == "__main__":
    main_benchmark()
