"""Transfer learning on real Fashion-MNIST: frozen features vs fine-tuning vs training from scratch.

The small convnet pretrained on classes 0-4 (shipped as ``convnet.fashionmnist_0to4``) learns classes 5-9
from 50 labelled images per class with the ``transfer_fashionmnist`` recipe, three ways:

- fine-tuned: the recipe as shipped (frozen for 20 epochs, then the whole network);
- frozen features: ``--model.unfreeze_at_epoch null`` (only the new head learns);
- from scratch: no weights, nothing frozen.

Each seed draws other labelled images (``--data.seed``) and starts the new head differently
(``--seed_everything``); every arm sees the same draw. Test accuracy is on the 5,000 test images of classes 5-9.

Usage::

    python benchmarks/transfer_learning.py --seeds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARMS = {
    "fine-tuned (frozen 20 epochs, then all)": [],
    "frozen features (head only)": ["--model.unfreeze_at_epoch", "null"],
    "from scratch": [
        "--model.weights",
        "null",
        "--model.freeze_backbone",
        "false",
        "--model.unfreeze_at_epoch",
        "null",
    ],
}


def run(arm: list[str], seed: int, root: Path) -> float:
    """Test accuracy of one ``transfer_fashionmnist`` run."""
    command = [
        sys.executable,
        "-m",
        "zoo.fit",
        "--recipe",
        "transfer_fashionmnist",
        "--trainer.logger",
        "false",
    ]
    command += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    command += ["--seed_everything", str(seed), "--data.seed", str(seed), *arm]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (metrics,) = root.glob("transfer_fashionmnist/*/metrics.json")
    return float(json.loads(metrics.read_text())["test"]["test_acc"])


def main() -> None:
    """Run every arm for every seed and print a table of test accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for index, (name, arm) in enumerate(ARMS.items()):
                accuracy = run(arm, seed, Path(tmp) / f"{seed}-{index}")
                results[name].append(accuracy)
                print(f"seed {seed}  {name:<42} {accuracy:.4f}", flush=True)
    scratch = results["from scratch"]
    print("\n| arm | mean | sd | min | max | better than scratch |\n|---|---|---|---|---|---|")
    for name, values in results.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        wins = sum(v > s for v, s in zip(values, scratch, strict=True))
        better = "" if name == "from scratch" else f"{wins} of {len(values)}"
        print(
            f"| {name} | {100 * statistics.mean(values):.2f}% | {100 * sd:.2f} | {100 * min(values):.2f}% | {100 * max(values):.2f}% | {better} |"
        )


if __name__ == "__main__":
    main()
