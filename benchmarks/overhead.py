"""What zoo's training loop costs: a hand-written PyTorch loop against a zoo Task + DataModule through the Trainer.

    python benchmarks/overhead.py                                   # lenet5 on Fashion-MNIST, 5 pairs of 1 epoch
    python benchmarks/overhead.py --model convnet --batch_size 128 --pairs 3
    python benchmarks/overhead.py --synthetic                       # random images, no dataset needed

Both arms train the same network (built from the registry with the same seed), on the same Fashion-MNIST
training images, normalised the same way, with the same batch size, optimiser (Adam) and number of steps; neither
augments, validates, checkpoints, logs to a file or shows a progress bar, as in Lightning's own parity benchmark.

* The plain loop keeps the images as one normalised ``float32`` tensor, draws a permutation each epoch, slices
  batches, and runs forward, cross-entropy, backward, step and zero_grad.
* The zoo arm is what a recipe runs: :class:`zoo.tasks.ClassificationTask` (its accuracy metric and ``self.log``
  calls included) and :class:`zoo.data.FashionMNISTDataModule` (its in-memory loader: ``uint8`` on the device,
  normalised per batch) through ``lightning.Trainer.fit``.

The arms alternate in ABBA order, so drift in the machine's load falls on both alike, after one untimed warm-up
of each. The time of an arm is the wall time of the whole fit (Trainer start-up included) with the dataset
already read into memory. Prints each pair and the median ratio zoo / plain (target: at most 1.03).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.cli import _hardware
from zoo.data import FashionMNISTDataModule
from zoo.models import create_model
from zoo.tasks import ClassificationTask

#: options the builders of the small models need for 28x28 single-channel images
MODEL_KWARGS: dict[str, dict[str, Any]] = {"lenet5": {"image_size": 28, "activation": "relu", "pool": "max"}}


class SyntheticFashionMNIST(FashionMNISTDataModule):
    """Random ``uint8`` images and labels in Fashion-MNIST's shapes, for machines without the dataset."""

    def locate(self, *, download: bool) -> Path:
        """No files to find: the images are drawn in :meth:`read_split`."""
        return Path(".")

    def read_split(self, folder: Path, *, train: bool) -> tuple[Tensor, Tensor]:
        """60,000 training or 10,000 test images and labels, the same on every call."""
        count = 60_000 if train else 10_000
        generator = torch.Generator().manual_seed(int(train))
        images = torch.randint(0, 256, (count, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (count,), generator=generator)


def build(model: str, seed: int) -> nn.Module:
    """The network both arms train, initialised from ``seed``."""
    torch.manual_seed(seed)
    return create_model(model, num_classes=10, in_channels=1, **MODEL_KWARGS.get(model, {}))


def plain_loop(
    images: Tensor, labels: Tensor, *, model: str, batch_size: int, steps: int, lr: float
) -> float:
    """Train with a hand-written loop for ``steps`` steps; returns the wall time in seconds."""
    started = time.perf_counter()
    net = build(model, seed=0)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            loss = F.cross_entropy(net(images[chosen]), labels[chosen])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
    return time.perf_counter() - started


def zoo_fit(data: FashionMNISTDataModule, *, model: str, steps: int, lr: float) -> float:
    """Train the same network as a zoo task through ``Trainer.fit`` for ``steps`` steps; the wall time."""
    started = time.perf_counter()
    torch.manual_seed(0)
    task = ClassificationTask(
        model=model, num_classes=10, in_channels=1, model_kwargs=MODEL_KWARGS.get(model)
    )
    task.configure_optimizers = lambda: torch.optim.Adam(task.parameters(), lr=lr)  # type: ignore[method-assign]
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="lenet5", help="a registered model taking 28x28x1 images")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps per fit (default: one epoch)"
    )
    parser.add_argument("--pairs", type=int, default=5, help="pairs of fits (plain, zoo), in ABBA order")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|max_steps=).*")

    data_class = SyntheticFashionMNIST if args.synthetic else FashionMNISTDataModule
    data = data_class(args.data_root, batch_size=args.batch_size, val_size=0)
    data.setup("fit")
    train_images, train_labels = data.splits["train"]
    # the plain loop's copy, normalised once up front as a hand-written loop would
    images = (train_images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    steps = args.steps or len(train_labels) // args.batch_size + (len(train_labels) % args.batch_size > 0)
    print(f"{args.model}, batch {args.batch_size}, {steps} steps a fit, "
          f"{'synthetic' if args.synthetic else 'Fashion-MNIST'} ({len(train_labels)} training images)")  # fmt: skip
    print(f"machine: {_hardware()}, torch {torch.__version__}, lightning {L.__version__}")

    def run(arm: str) -> float:
        if arm == "plain":
            return plain_loop(images, train_labels, model=args.model, batch_size=args.batch_size, steps=steps,
                              lr=args.lr)  # fmt: skip
        return zoo_fit(data, model=args.model, steps=steps, lr=args.lr)

    run("plain"), run("zoo")  # warm-up: allocator, thread pools and first-call costs left out of the pairs
    ratios = []
    for pair in range(args.pairs):
        times = {arm: run(arm) for arm in (("plain", "zoo") if pair % 2 == 0 else ("zoo", "plain"))}
        ratios.append(times["zoo"] / times["plain"])
        print(f"pair {pair + 1}: plain {times['plain']:.2f} s, zoo {times['zoo']:.2f} s, "
              f"ratio {ratios[-1]:.4f}", flush=True)  # fmt: skip
    median = statistics.median(ratios)
    print(f"median ratio zoo/plain: {median:.4f} ({(median - 1) * 100:+.1f}%) over {args.pairs} pairs; "
          f"min {min(ratios):.4f}, max {max(ratios):.4f}; target <= 1.03")  # fmt: skip


if __name__ == "__main__":
    main()
