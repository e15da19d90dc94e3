"""What a fit's progress bar and logging cost a step: zoo's task through the Trainer, with and without them.

    python benchmarks/progress_overhead.py                    # lenet5 on Fashion-MNIST, 5 rounds of 400 steps
    python benchmarks/progress_overhead.py --model convnet --steps 200
    python benchmarks/progress_overhead.py --synthetic        # random images, no dataset needed

``benchmarks/overhead.py`` times zoo with no progress bar and no logger, as Lightning's parity benchmark does; a
``zoo fit`` draws a bar on the terminal and logs every ``log_every_n_steps`` (50) steps. This benchmark times
zoo's task with what a fit adds, in three arms, fit after fit in alternating order; an arm's time is that of its
steps, from the start of the second to the end of the last (start-up left out). The steps are not paired with
plain-loop steps as in ``overhead.py``: Rich redraws from a thread of its own, which would slow the paired plain
steps as much as the Trainer's and hide its cost.

* ``none``: no bar, no logger (``overhead.py``'s zoo arm);
* ``lightning bar``: Lightning's ``RichProgressBar`` (updated after every batch, redrawn 100 times a second), which
  zoo drew before, with a CSV logger every 50 steps;
* ``zoo bar``: :class:`zoo.callbacks.TimedProgressBar` (redrawn 4 times a second), which every zoo command draws,
  with the same logger.

The bars draw on a terminal (Rich is told it writes to one; the characters go to ``/dev/null``). Prints each
round and the medians: each arm's time a step, and its ratio to the ``none`` arm's in the same round.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from overhead import MODEL_KWARGS, quartiles, step_parser, training_data

from zoo.callbacks import TimedProgressBar
from zoo.cli.environment import hardware
from zoo.data import FashionMNISTDataModule
from zoo.tasks import ClassificationTask

ARMS = ("none", "lightning bar", "zoo bar")


def bar(arm: str, terminal: Any) -> list[L.Callback]:
    """The progress bar of ``arm``, drawing on ``terminal``."""
    console = {"force_terminal": True, "file": terminal}
    if arm == "lightning bar":
        return [RichProgressBar(leave=True, console_kwargs=console)]
    if arm == "zoo bar":
        return [TimedProgressBar(leave=True, console_kwargs=console)]
    return []


class StepClock(L.Callback):
    """The time from the start of the second training batch to the end of training."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Mark the start of a step."""
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Mark the end of the last step."""
        self.marks.append(time.perf_counter())

    def per_step(self) -> float:
        """Milliseconds a step, the first left out."""
        return (self.marks[-1] - self.marks[1]) / (len(self.marks) - 2) * 1e3


def timed_fit(arm: str, data: FashionMNISTDataModule, *, model: str, steps: int) -> float:
    """Train zoo's task for ``steps`` steps with ``arm``'s bar and logger; milliseconds a step."""
    clock = StepClock()
    torch.manual_seed(0)
    task = ClassificationTask(
        model=model, num_classes=10, in_channels=1, model_kwargs=MODEL_KWARGS.get(model)
    )
    task.configure_optimizers = lambda: torch.optim.Adam(task.parameters(), lr=1e-3)  # type: ignore[method-assign]
    with open(os.devnull, "w") as terminal, tempfile.TemporaryDirectory() as logs:
        shown = arm != "none"
        L.Trainer(
            callbacks=[*bar(arm, terminal), clock],
            max_steps=steps,
            accelerator="cpu",
            devices=1,
            logger=CSVLogger(logs) if shown else False,
            log_every_n_steps=50,
            enable_checkpointing=False,
            enable_progress_bar=shown,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        ).fit(task, datamodule=data)
    return clock.per_step()


def main() -> None:
    parser = step_parser(__doc__, rounds=5, rounds_help="rounds of one fit of each arm, in alternating order")
    args = parser.parse_args()
    data = training_data(args)
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps a fit")
    print(f"machine: {hardware()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"torch {torch.__version__}, lightning {L.__version__}")  # fmt: skip

    for arm in ARMS:  # warm-up
        timed_fit(arm, data, model=args.model, steps=args.steps)
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for round_ in range(args.rounds):
        for arm in ARMS if round_ % 2 == 0 else ARMS[::-1]:
            times[arm].append(timed_fit(arm, data, model=args.model, steps=args.steps))
        print(
            f"  round {round_ + 1}: " + ", ".join(f"{arm} {times[arm][-1]:.3f} ms" for arm in ARMS),
            flush=True,
        )
    print(
        f"  median (quartiles) over {args.rounds} rounds: time a step; ratio to the none arm of the same round"
    )
    for arm in ARMS:
        low, middle, high = quartiles([t / n for t, n in zip(times[arm], times["none"], strict=True)])
        print(f"    {arm}: {statistics.median(times[arm]):.3f} ms; {middle:.4f} ({low:.4f}-{high:.4f})")


if __name__ == "__main__":
    main()
