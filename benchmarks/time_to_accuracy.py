"""Time to accuracy on Fashion-MNIST: how long a recipe made for speed takes to reach a test accuracy.

    python benchmarks/time_to_accuracy.py                                  # fast_fashionmnist, its epochs, 3 seeds
    python benchmarks/time_to_accuracy.py --epochs 4 16 --seeds 5 --threads 2
    python benchmarks/time_to_accuracy.py --recipe lenet5_fashionmnist --epochs 20 --seeds 1

As airbench measures CIFAR-10, a run has a fixed length chosen in advance; the test set is looked at once, at the
end, never to decide when to stop. For each ``--epochs`` value the recipe is trained through ``python -m zoo.fit``
(seeds 0, 1, ...) with W&B, figures and the progress bar off and ``--threads`` CPU threads. The time is the fit's
wall time (every training step; the recipe's own validation, if it has any; no start-up, no data reading),
read from the run's ``metrics.json``; accuracy is the test accuracy of the model the run ends with.

Prints, for each length: the time (median over seeds) and the test accuracy (mean, min and max over seeds), and
whether the mean reaches each ``--targets`` accuracy, as ``accuracy:seconds`` pairs (default 0.916:60 and
0.935:600, the fashion-mnist benchmark's 2-conv network and VGG16 figures, with their time budgets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from zoo.cli import main
from zoo.cli.environment import hardware


def fit_once(recipe: str, epochs: int | None, seed: int, folder: Path, data_root: str | None) -> dict:
    """One fit of ``recipe`` with ``seed``, for ``epochs`` epochs (None: the recipe's own); its metrics.json."""
    args = [
        "--recipe", recipe, "--seed_everything", str(seed), "--trainer.logger", "false",
        "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(folder),
    ]  # fmt: skip
    if epochs is not None:
        args += ["--trainer.max_epochs", str(epochs)]
    if data_root:
        args += ["--data.init_args.root", data_root]
    if main("fit", args) != 0:
        raise SystemExit(f"{recipe}: the fit with seed {seed} failed")
    (metrics_file,) = folder.glob("*/*/metrics.json")
    return json.loads(metrics_file.read_text())


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
        "--targets", nargs="+", default=["0.916:60", "0.935:600"], help="accuracy:seconds pairs"
    )
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    targets = [(float(a), float(s)) for a, s in (t.split(":") for t in args.targets)]
    print(f"machine: {hardware()}, torch {torch.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for epochs in args.epochs or [None]:
            runs = []
            for seed in range(args.seeds):
                folder = Path(scratch) / f"{epochs}-{seed}"
                metrics = fit_once(args.recipe, epochs, seed, folder, args.data_root)
                runs.append((metrics["test"]["test_acc"], metrics["fit_seconds"], metrics["epochs"]))
                print(f"{args.recipe}, {runs[-1][2]} epochs, seed {seed}: test accuracy {100 * runs[-1][0]:.2f}% "
                      f"after {runs[-1][1]:.1f} s", flush=True)  # fmt: skip
            accuracies = [a for a, _, _ in runs]
            seconds = statistics.median(s for _, s, _ in runs)
            rows.append((runs[0][2], statistics.mean(accuracies), min(accuracies), max(accuracies), seconds))
    print(f"\n| epochs | test accuracy, mean of {args.seeds} (min-max) | fit wall time (median) | reaches |")
    print("|---|---|---|---|")
    for epochs, mean, low, high, seconds in rows:
        reached = [f"{100 * a:.1f}% in {s:.0f} s" for a, s in targets if mean >= a and seconds <= s]
        print(f"| {epochs} | {100 * mean:.2f}% ({100 * low:.2f}-{100 * high:.2f}) | {seconds:.1f} s | "
              f"{', '.join(reached) or 'no target'} |")  # fmt: skip


if __name__ == "__main__":
    main_benchmark()
