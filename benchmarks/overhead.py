"""What zoo's training loop costs: a hand-written PyTorch loop against a zoo Task + DataModule through the Trainer.

    python benchmarks/overhead.py                                   # lenet5 on Fashion-MNIST, 9 rounds of 1 epoch
    python benchmarks/overhead.py --model convnet --rounds 5
    python benchmarks/overhead.py --synthetic                       # random images, no dataset needed

The arms train the same network (built from the registry with the same seed), on the same Fashion-MNIST
training images, normalised the same way, with the same batch size, optimiser (Adam) and number of steps; none
augments, validates, checkpoints, logs to a file or shows a progress bar, as in Lightning's own parity benchmark.

* ``plain``: a hand-written loop. It keeps the images as one normalised ``float32`` tensor, draws a permutation
  each epoch, slices batches, and runs forward, cross-entropy, backward, step and zero_grad. Its steps run in the
  environment of a script that imports torch alone (:func:`torch_alone`), not with the CUDA probe setting that
  importing Lightning adds, which costs each optimiser step 0.4-0.6 ms on a host without NVIDIA's driver.
* ``lightning``: the plain loop's step as the ``training_step`` of a bare ``LightningModule``, given the plain
  loop's batches, through ``lightning.Trainer.fit``: what Lightning's own loop costs, with no zoo code at all.
* ``zoo``: what a recipe runs: :class:`zoo.tasks.ClassificationTask` (its metrics and loss logging included)
  and :class:`zoo.data.FashionMNISTDataModule` (its in-memory loader: ``uint8`` on the device, normalised per
  batch) through ``lightning.Trainer.fit``.
* ``floor`` (step by step only): :class:`FloorModule`, the ``lightning`` arm with the optimisation done by hand
  (manual optimisation, the bare torch optimiser, ``loss.backward()``): what is left is Lightning's loop around
  each batch, which a ``training_step(batch, batch_idx)`` trained by ``Trainer.fit`` cannot leave out. If
  ``floor / plain`` is above a target, no such module, zoo's task or another, meets it on that machine.

Two ways of timing them, both by default (``--mode``):

* Whole fits: each round runs the three arms once, in an order that rotates from round to round, so drift in the
  machine's load falls on all alike, after one untimed warm-up of each. The time of an arm is the wall time of
  the whole fit (Trainer start-up included) with the dataset already read into memory.
* Step by step: the ``lightning``, ``zoo`` and ``floor`` fits, in an order that rotates from round to round,
  run with a callback that takes one plain-loop step (its own network, optimiser and batches) just before each
  of the Trainer's steps, so every Trainer step is paired with a plain step taken a moment earlier on the same
  machine. The ratio of the summed times is the per-step cost,
  start-up left out; on a machine whose speed drifts (shared cores), its rounds agree far more closely.

Prints each round and the median ratios zoo / plain, lightning / plain (Lightning's own loop), floor / plain (step
by step) and zoo / lightning (what zoo adds to Lightning). Targets: zoo / lightning at most 1.01 on every network;
zoo / plain at most 1.03 where a plain step takes 10 ms or more (on shorter steps Lightning's own work around each
batch, which zoo does not control, is a larger share; ``floor / plain`` shows how large). The progress bar and
logging of a real ``zoo fit`` are timed by ``progress_overhead.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.cli.environment import hardware
from zoo.data import FashionMNISTDataModule
from zoo.models import create_model
from zoo.tasks import ClassificationTask
from zoo.tasks.cuda_probe import PROBE_VARIABLE

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


@contextlib.contextmanager
def probe_setting(value: str | None) -> Iterator[None]:
    """Torch's CUDA probe variable (``zoo/tasks/cuda_probe.py``) at ``value`` for the block (None: unset), then as
    it was."""
    before = os.environ.pop(PROBE_VARIABLE, None)
    if value is not None:
        os.environ[PROBE_VARIABLE] = value
    try:
        yield
    finally:
        os.environ.pop(PROBE_VARIABLE, None)
        if before is not None:
            os.environ[PROBE_VARIABLE] = before


def torch_alone() -> contextlib.AbstractContextManager[None]:
    """The environment of a script that imports torch alone, for the plain loop's steps: without the CUDA probe
    setting that importing Lightning adds."""
    return probe_setting(None)


def build(model: str, seed: int) -> nn.Module:
    """The network both arms train, initialised from ``seed``."""
    torch.manual_seed(seed)
    return create_model(model, num_classes=10, in_channels=1, **MODEL_KWARGS.get(model, {}))


def plain_batches(
    images: Tensor, labels: Tensor, *, batch_size: int, steps: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """``steps`` batches sliced from a fresh permutation each epoch, as a hand-written loop draws them."""
    generator = torch.Generator().manual_seed(0)
    done = 0
    while True:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            yield images[chosen], labels[chosen]
            done += 1
            if done == steps:
                return


class PlainStepper:
    """The hand-written loop, one step per call: its own network, Adam and batches."""

    def __init__(
        self, images: Tensor, labels: Tensor, *, model: str, batch_size: int, steps: int, lr: float
    ) -> None:
        self.net = build(model, seed=0)
        self.net.train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.batches = plain_batches(images, labels, batch_size=batch_size, steps=steps)

    def __call__(self) -> bool:
        """Train on the next batch; False once the ``steps`` batches are used up."""
        batch = next(self.batches, None)
        if batch is None:
            return False
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True


def plain_loop(
    images: Tensor, labels: Tensor, *, model: str, batch_size: int, steps: int, lr: float
) -> float:
    """Train with a hand-written loop for ``steps`` steps; returns the wall time in seconds."""
    started = time.perf_counter()
    step = PlainStepper(images, labels, model=model, batch_size=batch_size, steps=steps, lr=lr)
    with torch_alone():
        while step():
            pass
    return time.perf_counter() - started


class Interleaved(L.Callback):
    """Runs one plain-loop step before each of the Trainer's steps and times both, step by step.

    A Trainer step is timed from the end of the plain step before it to the start of the next batch's hook (or the
    end of training): it holds Lightning's whole loop for that batch, this callback's own hook call included.
    """

    def __init__(self, plain_step: PlainStepper) -> None:
        self.plain_step = plain_step
        self.plain_times: list[float] = []
        self.trainer_times: list[float] = []
        self._mark: float | None = None

    def _close_step(self) -> None:
        if self._mark is not None:
            self.trainer_times.append(time.perf_counter() - self._mark)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Close the Trainer's previous step, then time one plain step."""
        self._close_step()
        with torch_alone():
            started = time.perf_counter()
            self.plain_step()
            ended = time.perf_counter()
        self._mark = time.perf_counter()
        self.plain_times.append(ended - started)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Close the Trainer's last step."""
        self._close_step()


class PlainBatches:
    """The plain loop's batches as a loader Lightning can iterate (it asks for ``len``)."""

    def __init__(self, images: Tensor, labels: Tensor, *, batch_size: int, steps: int) -> None:
        self.images, self.labels, self.batch_size, self.steps = images, labels, batch_size, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return plain_batches(self.images, self.labels, batch_size=self.batch_size, steps=self.steps)


class BareModule(L.LightningModule):
    """The plain loop's step as a ``LightningModule``: no metrics, nothing logged."""

    def __init__(self, model: str, lr: float) -> None:
        super().__init__()
        self.net = build(model, seed=0)
        self.lr = lr

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch."""
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, as the plain loop."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class FloorModule(BareModule):
    """The plain loop's step with the optimisation done by hand, as the plain loop does it: manual optimisation and
    the bare torch optimiser, so no closure, precision plug-in, gradient clipping or optimiser hooks of Lightning's.

    What is left is Lightning's loop around each batch (fetching it, the batch hooks, the progress counters and the
    logger connector), which every ``training_step(batch, batch_idx)`` trained by ``Trainer.fit`` goes through: the
    least such a step costs there. Its optimiser steps are not counted in ``global_step``, so its fits stop at the
    end of the batches.
    """

    def __init__(self, model: str, lr: float) -> None:
        super().__init__(model, lr)
        self.automatic_optimization = False

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch, then backward, the optimiser's step and ``zero_grad``, as the plain loop."""
        optimizer = self.optimizers(use_pl_optimizer=False)
        assert isinstance(optimizer, torch.optim.Optimizer)  # the one optimiser of configure_optimizers
        loss = super().training_step(batch, batch_idx)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss


def quiet_trainer(
    steps: int, callbacks: list[L.Callback] | None = None, *, max_epochs: int | None = None
) -> L.Trainer:
    """A Trainer that stops after ``steps`` optimiser steps, or, given ``max_epochs``, after that many epochs of
    its batches (for :class:`FloorModule`, whose steps it does not count), and does nothing else: no validation,
    checkpoint, logger or bar."""
    return L.Trainer(
        callbacks=callbacks,
        max_steps=steps if max_epochs is None else -1,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )


def lightning_fit(
    images: Tensor,
    labels: Tensor,
    *,
    model: str,
    batch_size: int,
    steps: int,
    lr: float,
    callbacks: list[L.Callback] | None = None,
    module_class: type[BareModule] = BareModule,
) -> float:
    """Train ``module_class`` (:class:`BareModule`, or :class:`FloorModule` for the floor arm) on the plain loop's
    ``steps`` batches, one epoch, through ``Trainer.fit``; the wall time."""
    started = time.perf_counter()
    module = module_class(model, lr)
    loader = PlainBatches(images, labels, batch_size=batch_size, steps=steps)
    quiet_trainer(steps, callbacks, max_epochs=1).fit(module, train_dataloaders=loader)
    return time.perf_counter() - started


def zoo_fit(
    data: FashionMNISTDataModule,
    *,
    model: str,
    steps: int,
    lr: float,
    callbacks: list[L.Callback] | None = None,
) -> float:
    """Train the same network as a zoo task through ``Trainer.fit`` for ``steps`` steps; the wall time."""
    started = time.perf_counter()
    torch.manual_seed(0)
    task = ClassificationTask(
        model=model, num_classes=10, in_channels=1, model_kwargs=MODEL_KWARGS.get(model)
    )
    task.configure_optimizers = lambda: torch.optim.Adam(task.parameters(), lr=lr)  # type: ignore[method-assign]
    quiet_trainer(steps, callbacks).fit(task, datamodule=data)
    return time.perf_counter() - started


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options saying which images to train on: ``--data_root`` and ``--synthetic``."""
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")


def step_parser(description: str | None, *, rounds: int, rounds_help: str) -> argparse.ArgumentParser:
    """The options of the benchmarks that time the steps of a few hundred: ``--model``, ``--batch_size``,
    ``--steps`` (400), ``--rounds`` (``rounds`` by default) and the data's."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="lenet5", help="a registered model taking 28x28x1 images")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps per fit")
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_help)
    add_data_arguments(parser)
    return parser


def training_data(args: argparse.Namespace) -> FashionMNISTDataModule:
    """The Fashion-MNIST training images (or random ones with ``--synthetic``) in batches of ``--batch_size``, set
    up; Lightning's warnings about the loader's workers and the step limit silenced."""
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|max_steps=).*")
    data_class = SyntheticFashionMNIST if args.synthetic else FashionMNISTDataModule
    data = data_class(args.data_root, batch_size=args.batch_size, val_size=0)
    data.setup("fit")
    return data


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """The first quartile, median and third quartile of ``values``."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="lenet5", help="a registered model taking 28x28x1 images")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps per fit (default: one epoch)"
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="rounds of one fit of each arm, in rotating order"
    )
    parser.add_argument(
        "--mode",
        choices=("fits", "steps", "both"),
        default="both",
        help="time whole fits of each arm in turn, or each Trainer step against a plain step run just before it",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    add_data_arguments(parser)
    args = parser.parse_args()
    data = training_data(args)
    train_images, train_labels = data.splits["train"]
    # the plain loop's copy, normalised once up front as a hand-written loop would
    images = (train_images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    steps = args.steps or len(train_labels) // args.batch_size + (len(train_labels) % args.batch_size > 0)
    print(f"{args.model}, batch {args.batch_size}, {steps} steps a fit, "
          f"{'synthetic' if args.synthetic else 'Fashion-MNIST'} ({len(train_labels)} training images)")  # fmt: skip
    print(
        f"machine: {hardware()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"torch {torch.__version__}, lightning {L.__version__}"
    )

    def fit(arm: str, callbacks: list[L.Callback] | None = None) -> float:
        if arm == "plain":
            return plain_loop(images, train_labels, model=args.model, batch_size=args.batch_size, steps=steps,
                              lr=args.lr)  # fmt: skip
        if arm in ("lightning", "floor"):
            module_class = BareModule if arm == "lightning" else FloorModule
            return lightning_fit(images, train_labels, model=args.model, batch_size=args.batch_size, steps=steps,
                                 lr=args.lr, callbacks=callbacks, module_class=module_class)  # fmt: skip
        return zoo_fit(data, model=args.model, steps=steps, lr=args.lr, callbacks=callbacks)

    arms = ("plain", "lightning", "zoo")
    for arm in arms + ("floor",) * (args.mode != "fits"):  # warm-up: allocator, thread pools, first calls
        fit(arm)
    if args.mode in ("fits", "both"):
        compare_fits(fit, arms, rounds=args.rounds, steps=steps)
    if args.mode in ("steps", "both"):

        def interleaved(arm: str) -> Interleaved:
            stepper = PlainStepper(images, train_labels, model=args.model, batch_size=args.batch_size,
                                   steps=steps, lr=args.lr)  # fmt: skip
            clock = Interleaved(stepper)
            fit(arm, [clock])
            return clock

        compare_steps(interleaved, rounds=args.rounds)


def compare_fits(fit: Callable[[str], float], arms: tuple[str, ...], *, rounds: int, steps: int) -> None:
    """Whole fits of every arm, round after round in rotating order; prints the ratios of each round's times."""
    print("whole fits (start-up included):")
    orders = list(itertools.permutations(arms))  # every order once in six rounds: no arm always first or last
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for round_ in range(rounds):
        for arm in orders[round_ % len(orders)]:
            times[arm].append(fit(arm))
        print(f"  round {round_ + 1}: " + ", ".join(f"{arm} {times[arm][-1]:.2f} s" for arm in arms)
              + f"; zoo/plain {times['zoo'][-1] / times['plain'][-1]:.4f}", flush=True)  # fmt: skip

    def ratios(top: str, bottom: str) -> list[float]:
        return [t / b for t, b in zip(times[top], times[bottom], strict=True)]

    print(f"  median (quartiles) over {rounds} rounds:")
    for top, bottom, what in (
        ("zoo", "plain", "target <= 1.03 for steps of 10 ms or more"),
        ("lightning", "plain", "Lightning's own loop"),
        ("zoo", "lightning", "what zoo adds to Lightning; target <= 1.01"),
    ):
        low, middle, high = quartiles(ratios(top, bottom))
        print(f"    {top}/{bottom}: {middle:.4f} ({low:.4f}-{high:.4f}); {what}")
    plain_step = statistics.median(times["plain"]) / steps * 1e3
    for arm in ("lightning", "zoo"):
        extra = [(t - p) / steps * 1e3 for t, p in zip(times[arm], times["plain"], strict=True)]
        print(
            f"    {arm}: {statistics.median(extra):+.3f} ms a step over the plain loop's {plain_step:.3f} ms"
        )


def compare_steps(interleaved: Callable[[str], Interleaved], *, rounds: int) -> None:
    """Fits of the Trainer's arms (Lightning alone, zoo, and Lightning's floor) with a plain step run before each of
    their steps, in an order that rotates from round to round; prints, per round, the ratio of each arm's summed
    step times to the plain steps' (the first step of each left out: lazy set-up)."""
    print("step by step (each Trainer step right after a plain step; start-up left out):")
    arms = ("lightning", "zoo", "floor")
    orders = list(itertools.permutations(arms))
    ratios: dict[str, list[float]] = {arm: [] for arm in arms}
    extra: dict[str, list[float]] = {arm: [] for arm in arms}
    for round_ in range(rounds):
        for arm in orders[round_ % len(orders)]:
            clock = interleaved(arm)
            trainer_time, plain_time = sum(clock.trainer_times[1:]), sum(clock.plain_times[1:])
            ratios[arm].append(trainer_time / plain_time)
            extra[arm].append((trainer_time - plain_time) / (len(clock.plain_times) - 1) * 1e3)
        print(f"  round {round_ + 1}: " + ", ".join(f"{arm}/plain {ratios[arm][-1]:.4f}" for arm in arms),
              flush=True)  # fmt: skip
    print(f"  median (quartiles) over {rounds} rounds:")
    for arm, what in (
        ("zoo", "target <= 1.03 for steps of 10 ms or more"),
        ("lightning", "Lightning's own loop"),
        ("floor", "Lightning's loop with the step done by hand: what no training_step leaves out"),
    ):
        low, middle, high = quartiles(ratios[arm])
        print(f"    {arm}/plain: {middle:.4f} ({low:.4f}-{high:.4f}), {statistics.median(extra[arm]):+.3f} ms a step; "
              f"{what}")  # fmt: skip
    # each arm's steps against the plain steps paired with them, so the two ratios share a yardstick in a round
    low, middle, high = quartiles([z / b for z, b in zip(ratios["zoo"], ratios["lightning"], strict=True)])
    print(
        f"    zoo/lightning: {middle:.4f} ({low:.4f}-{high:.4f}); what zoo adds to Lightning; target <= 1.01"
    )


if __name__ == "__main__":
    main()
