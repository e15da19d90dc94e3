"""Training speed against torch's intra-op thread count, on an idle machine and beside a second training job.

    python benchmarks/threads.py                                   # lenet5 and resnet20, 1 and 2 threads, 3 rounds
    python benchmarks/threads.py --models lenet5 --threads 1 2 4 --seconds 20
    python benchmarks/threads.py --seconds 0.5 --rounds 1          # a quick check that it runs (no real figures)

Each measurement runs plain training steps (forward, cross-entropy, backward, SGD step) of one network on random
images of its input size, with ``torch.set_num_threads(N)``, for ``--seconds`` after a few warm-up steps, and gives
the steps per second and the median step time. It is made twice:

* ``idle``: nothing else of ours runs (the machine must otherwise be idle: other jobs make these figures meaningless);
* ``beside a job``: a second process trains the same network in a loop at torch's default thread count, as a second
  job started without ``--threads`` does, from before the measurement until after it.

Thread counts are measured in an order that rotates from round to round, and the median over ``--rounds`` is
printed, in a table headed by the machine (:func:`zoo.cli.environment.hardware` and the CPU capability). zoo's default
thread count (``zoo.cli.speed``) rests on these figures: see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from zoo.cli.environment import hardware
from zoo.cli.speed import busy_cores, cpu_capability
from zoo.models import create_model

#: each network's input (channels, size), batch and builder options, as its recipe trains it
NETWORKS: dict[str, dict[str, Any]] = {
    "lenet5": {
        "shape": (1, 28, 28),
        "batch": 64,
        "kwargs": {"image_size": 28, "activation": "relu", "pool": "max"},
    },
    "resnet20": {"shape": (3, 32, 32), "batch": 128, "kwargs": {}},
}
_WARM_UP = 3
_READY = "ready"


class Stepper:
    """Plain training steps of ``model`` on one random batch, each timed."""

    def __init__(self, model: str) -> None:
        spec = NETWORKS[model]
        torch.manual_seed(0)
        self.net = create_model(model, num_classes=10, in_channels=spec["shape"][0], **spec["kwargs"])
        self.images = torch.randn(spec["batch"], *spec["shape"])
        self.labels = torch.randint(0, 10, (spec["batch"],))
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9)

    def step(self) -> float:
        """One training step; its wall time in seconds."""
        start = time.perf_counter()
        loss = F.cross_entropy(self.net(self.images), self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start

    def measure(self, threads: int, *, seconds: float, steps: int | None) -> tuple[float, float]:
        """Steps per second and the median step time (ms) with ``threads``, over ``seconds`` (or ``steps``)."""
        torch.set_num_threads(threads)
        for _ in range(_WARM_UP):
            self.step()
        times: list[float] = []
        start = time.perf_counter()
        while (len(times) < steps) if steps else (time.perf_counter() - start < seconds or len(times) < 2):
            times.append(self.step())
        elapsed = time.perf_counter() - start
        return len(times) / elapsed, 1000 * statistics.median(times)


def rival(model: str) -> None:
    """Train ``model`` until killed, at torch's default thread count: the second job."""
    stepper = Stepper(model)
    stepper.step()
    print(_READY, flush=True)
    while True:
        stepper.step()


@contextmanager
def second_job(model: str) -> Iterator[None]:
    """A second process training ``model`` for as long as the block runs."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--rival", model], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != _READY:
            raise SystemExit(f"the second job ({model}) did not start")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(
    models: list[str], counts: list[int], *, rounds: int, seconds: float, steps: int | None
) -> list[dict]:
    """Every model, condition and thread count, ``rounds`` times; the median figures, one row each."""
    rows = []
    for model in models:
        stepper = Stepper(model)
        for condition in ("idle", "beside a job"):
            figures: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
            for index in range(rounds):
                order = counts[index % len(counts) :] + counts[: index % len(counts)]
                if condition == "idle":
                    for n in order:
                        figures[n].append(stepper.measure(n, seconds=seconds, steps=steps))
                else:
                    with second_job(model):
                        for n in order:
                            figures[n].append(stepper.measure(n, seconds=seconds, steps=steps))
            for n in counts:
                rows.append({
                    "network": model, "batch": NETWORKS[model]["batch"], "condition": condition, "threads": n,
                    "steps_per_s": statistics.median(f[0] for f in figures[n]),
                    "step_ms": statistics.median(f[1] for f in figures[n]),
                })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| network, batch | condition | threads | steps/s | median step |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['network']}`, {row['batch']} | {row['condition']} | {row['threads']} | "
            f"{row['steps_per_s']:.1f} | {row['step_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=sorted(NETWORKS), default=["lenet5", "resnet20"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each measuring every count (default: 3)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per measurement (default: 10)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per measurement instead of seconds"
    )
    parser.add_argument("--rival", help=argparse.SUPPRESS)  # the second job's own process
    args = parser.parse_args(argv)
    if args.rival:
        rival(args.rival)
        return
    if any(n < 1 for n in args.threads) or args.rounds < 1 or args.seconds <= 0 or (args.steps or 1) < 1:
        parser.error("--threads, --rounds, --seconds and --steps take positive numbers")
    machine = f"{hardware()}; CPU capability {cpu_capability()}; torch {torch.__version__}"
    default = torch.get_num_threads()
    print(f"Machine: {machine}; torch's default: {default} threads. Measured {time.strftime('%Y-%m-%d')}.")
    busy = busy_cores(1.0)
    if busy is not None:  # the idle figures are idle only if nothing else runs
        print(f"Before the run, other processes kept {busy:.1f} of the cores busy" + (
            ": the machine is not idle, and the 'idle' rows are not either" if busy > 0.2 else ""
        ))  # fmt: skip
    rows = run(args.models, args.threads, rounds=args.rounds, seconds=args.seconds, steps=args.steps)
    print(table(rows))
    for model in args.models:
        for condition in ("idle", "beside a job"):
            mine = {
                r["threads"]: r["step_ms"]
                for r in rows
                if r["network"] == model and r["condition"] == condition
            }
            best = min(mine, key=lambda n: mine[n])
            print(f"{model}, {condition}: fastest with {best} thread(s); " + ", ".join(
                f"{n} threads {mine[n] / mine[best]:.2f}x its step time" for n in sorted(mine) if n != best
            ))  # fmt: skip


if __name__ == "__main__":
    main()
