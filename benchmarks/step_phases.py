"""Where a training step's time goes: a plain loop's step against Lightning's and zoo's, phase by phase.

    python benchmarks/step_phases.py                                   # lenet5, batch 64, 400 steps a fit, 3 rounds
    python benchmarks/step_phases.py --model convnet
    python benchmarks/step_phases.py --synthetic --steps 50 --rounds 1 # random images, no dataset needed

``overhead.py`` measures how much longer a Trainer step takes than a plain one; this script says in which part of
the step the difference lies. Its arms are ``overhead.py``'s: the bare ``LightningModule`` (Lightning's own loop)
and zoo's task with its DataModule, each through ``Trainer.fit``, each Trainer step paired with a plain-loop step
taken just before it. A callback and a wrapper around ``training_step`` read the clock at Lightning's hooks, which
cut a Trainer step into seven phases:

1. ``before forward``: from the batch's start to ``training_step`` (the optimiser's ``step`` and the closure that
   Lightning's automatic optimisation runs the training step in);
2. ``forward + loss``: ``training_step`` itself;
3. ``loss to backward``: from the step's return to ``on_before_backward`` (the closure's result, ``zero_grad``);
4. ``backward``: ``on_before_backward`` to ``on_after_backward``;
5. ``backward to optimiser``: to ``on_before_optimizer_step`` (gradient clipping's checks);
6. ``optimiser step``: to ``on_train_batch_end`` (the update, then Lightning's bookkeeping of the step);
7. ``between batches``: to the next batch's start (the next batch fetched and its transfer hooks run, the loop's
   progress, logging, checks).

The plain step is timed in its own four parts (fetch, forward + loss, backward, ``step`` and ``zero_grad``), shown in
the rows that do the same work. Prints, per arm, each phase's mean milliseconds a step (the first steps left out),
the median over rounds; the phases that exist only in Lightning's loop are its cost.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from overhead import (
    PlainStepper,
    lightning_fit,
    step_parser,
    torch_alone,
    training_data,
    zoo_fit,
)

from zoo.cli.environment import hardware

PHASES = (
    "before forward",
    "forward + loss",
    "loss to backward",
    "backward",
    "backward to optimiser",
    "optimiser step",
    "between batches",
)
#: the rows of the plain step's four parts
PLAIN_PHASES = {"fetch": "between batches", "forward": "forward + loss", "backward": "backward",
                "step": "optimiser step"}  # fmt: skip
#: steps left out at the start of each fit: lazy set-up and first calls
SKIP = 5


class TimedPlainStepper(PlainStepper):
    """The plain loop's step, timed in its four parts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.times: dict[str, list[float]] = defaultdict(list)

    def __call__(self) -> bool:
        """Train on the next batch, timing each part; False once the batches are used up."""
        clock = time.perf_counter
        started = clock()
        batch = next(self.batches, None)
        if batch is None:
            return False
        fetched = clock()
        loss = F.cross_entropy(self.net(batch[0]), batch[1])
        forward = clock()
        loss.backward()
        backward = clock()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        done = clock()
        for part, seconds in zip(PLAIN_PHASES, (fetched - started, forward - fetched, backward - forward,
                                                done - backward), strict=True):  # fmt: skip
            self.times[part].append(seconds)
        return True


class PhaseClock(L.Callback):
    """Reads the clock at the hooks that cut a Trainer step into :data:`PHASES`, and takes one plain step before
    each Trainer step (outside every phase)."""

    def __init__(self, plain_step: TimedPlainStepper) -> None:
        self.plain_step = plain_step
        self.times: dict[str, list[float]] = defaultdict(list)
        self._mark: float | None = None

    def _lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self._mark is not None:
            self.times[phase].append(now - self._mark)
        self._mark = now

    def wrap(self, module: L.LightningModule) -> None:
        """Time ``module``'s ``training_step`` (phases 1 and 2)."""
        step: Callable[..., Any] = module.training_step

        def timed_step(*args: Any, **kwargs: Any) -> Any:
            self._lap("before forward")
            output = step(*args, **kwargs)
            self._lap("forward + loss")
            return output

        module.training_step = timed_step  # type: ignore[method-assign]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.wrap(pl_module)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._lap("between batches")
        with torch_alone():
            self.plain_step()
        self._mark = time.perf_counter()

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        self._lap("loss to backward")

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap("backward")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._lap("backward to optimiser")

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._lap("optimiser step")

    def milliseconds(self) -> dict[str, dict[str, float]]:
        """Each arm's mean milliseconds a step in each phase, the first :data:`SKIP` steps left out:
        ``{"plain": {...}, "trainer": {...}}``."""
        steps = len(self.times["optimiser step"])
        plain = dict.fromkeys(PHASES, 0.0)
        for part, phase in PLAIN_PHASES.items():
            plain[phase] = 1e3 * statistics.fmean(self.plain_step.times[part][SKIP:steps])
        trainer = {phase: 1e3 * statistics.fmean(self.times[phase][SKIP:]) for phase in PHASES}
        return {"plain": plain, "trainer": trainer}


def main() -> None:
    parser = step_parser(__doc__, rounds=3, rounds_help="fits of each arm, in alternating order")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    if args.steps <= SKIP + 1:
        parser.error(f"--steps must be more than {SKIP + 1}: the first {SKIP} steps of each fit are left out")
    data = training_data(args)
    train_images, train_labels = data.splits["train"]
    images = (train_images.float() / 255 - data.mean.view(1, -1, 1, 1)) / data.std.view(1, -1, 1, 1)
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps a fit, {args.rounds} round(s); "
          f"machine: {hardware()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"torch {torch.__version__}, lightning {L.__version__}")  # fmt: skip

    def clocked(arm: str) -> dict[str, dict[str, float]]:
        stepper = TimedPlainStepper(images, train_labels, model=args.model, batch_size=args.batch_size,
                                    steps=args.steps, lr=args.lr)  # fmt: skip
        clock = PhaseClock(stepper)
        if arm == "lightning":
            lightning_fit(images, train_labels, model=args.model, batch_size=args.batch_size, steps=args.steps,
                          lr=args.lr, callbacks=[clock])  # fmt: skip
        else:
            zoo_fit(data, model=args.model, steps=args.steps, lr=args.lr, callbacks=[clock])
        return clock.milliseconds()

    rounds: dict[str, list[dict[str, float]]] = defaultdict(list)
    for round_ in range(args.rounds):
        for arm in ("lightning", "zoo") if round_ % 2 == 0 else ("zoo", "lightning"):
            measured = clocked(arm)
            rounds["plain"].append(measured["plain"])
            rounds[arm].append(measured["trainer"])
    table(rounds)


def table(rounds: dict[str, list[dict[str, float]]]) -> None:
    """Print each phase's milliseconds a step, per arm (median over rounds), and the totals."""
    arms = ("plain", "lightning", "zoo")
    median = {arm: {p: statistics.median(r[p] for r in rounds[arm]) for p in PHASES} for arm in arms}
    print("\n| phase | plain loop, ms a step | Lightning alone | zoo |")
    print("|---|---|---|---|")
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(f"{median[arm][phase]:.3f}" for arm in arms) + " |")
    whole = {arm: sum(median[arm].values()) for arm in arms}
    print("| **whole step** | " + " | ".join(f"**{whole[arm]:.3f}**" for arm in arms) + " |")
    print(
        f"\nagainst the plain step: Lightning alone {whole['lightning'] / whole['plain']:.3f}, "
        f"zoo {whole['zoo'] / whole['plain']:.3f}"
    )


if __name__ == "__main__":
    main()
