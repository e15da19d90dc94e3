"""How long a zoo process takes to end after its last line: Python's last garbage collection against zoo's freeze.

    python benchmarks/exit_time.py                 # 5 rounds
    python benchmarks/exit_time.py --rounds 9

At exit Python collects garbage once more, walking every object still alive. A zoo command has imported torch,
Lightning and W&B by then: about half a million objects. ``zoo.cli.app.main`` registers ``gc.freeze`` to run at exit
(after the command's own exit handlers), which moves them out of the collector's reach.

Each round starts two fresh processes, one after the other in an order that alternates from round to round. Each
imports what ``zoo fit`` imports (``zoo.cli.fit`` and W&B), one of them registering ``gc.freeze`` at exit as zoo does,
prints the time and exits; the time counted is from that print to the process's end, as the parent sees it.
Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from zoo.cli.environment import hardware

#: the child: what a zoo fit imports, then (``{freeze}``) zoo's exit handler, then the moment its work is done
CHILD = """
import atexit, gc, time
import wandb
import zoo.cli.fit
if {freeze}:
    atexit.register(gc.freeze)
print(time.time(), len(gc.get_objects()), flush=True)
"""


def exit_seconds(*, freeze: bool) -> tuple[float, int]:
    """Seconds from a child's last line to its end, and the objects the collector tracked then."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(freeze=freeze)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    printed, objects = child.stdout.readline().split()
    child.wait()
    return time.time() - float(printed), int(objects)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {hardware()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"Python {sys.version.split()[0]}, torch {torch.__version__}")  # fmt: skip
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for freeze in (False, True) if round_ % 2 == 0 else (True, False):
            seconds, objects = exit_seconds(freeze=freeze)
            times[freeze].append(seconds)
        print(f"  round {round_ + 1}: Python's collection {times[False][-1]:.2f} s, frozen {times[True][-1]:.2f} s "
              f"({objects} objects tracked)", flush=True)  # fmt: skip
    collected, frozen = statistics.median(times[False]), statistics.median(times[True])
    print(f"median over {args.rounds} rounds: Python's collection {collected:.2f} s, frozen (zoo) {frozen:.2f} s; "
          f"frozen / collected {frozen / collected:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
