"""Speed settings chosen for the host, never assumed: what the host is, and torch's intra-op threads.

Threads: ``--threads N`` (or ``threads: N`` in a recipe) sets ``torch.set_num_threads(N)``. Without it, zoo takes
``OMP_NUM_THREADS`` when it is set, and otherwise measures, over a fifth of a second, how many of the cores this
process may run on other processes keep busy, and takes the rest: ``round(usable - busy)``, at least 1 and at most
torch's default (one per core). Torch's threads wait for each other after every operation, so a thread that shares
its core with another job stalls them all: on a 2-core machine running a second training job, a LeNet-5 step took
222 ms with torch's two threads and 13.8 ms with one. A job started after zoo's choice is not seen; ``--threads``
then decides. Under a multi-process launch (``--trainer.strategy ddp`` on CPUs) a measured count is shared between
the processes, as Lightning shares the cores.

The precision is chosen in :mod:`zoo.cli.precision`. Each choice is said in one line on stderr (``threads: 1
(...)``, ``precision: bf16-mixed (...)``), and ``zoo fit`` records both in ``metrics.json`` with the CPU's
capability (:func:`cpu_capability`).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.cli.environment import is_child_rank
from zoo.errors import ZooError

__all__ = [
    "Choice",
    "busy_cores",
    "check_threads",
    "choose_threads",
    "cpu_capability",
    "cpu_flags",
    "free_threads",
    "say",
    "share_threads",
    "speed_record",
    "threads_for",
]

#: how rank zero hands its choice to the other ranks of a launch (``count|reason``)
_THREADS_ENV = "_ZOO_THREADS"
#: torch's own thread count, before zoo changes it
_TORCH_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class Choice:
    """A setting zoo chose, and why, in words a user reads after ``threads: 2`` or ``precision: 32-true``."""

    value: Any
    reason: str

    def line(self, name: str) -> str:
        """``name: value (reason)``, the line printed for the choice."""
        return f"{name}: {self.value} ({self.reason})"


def say(choice: Choice, name: str) -> None:
    """Print ``choice`` as one line, among the lines a fit starts with (stderr is kept for what went wrong)."""
    print(choice.line(name), flush=True)


# ---- the host ----------------------------------------------------------------------------------------------------


def cpu_capability() -> str:
    """The vector instructions torch's CPU kernels use here: ``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``, ``"SVE256"``..."""
    return str(torch.backends.cpu.get_cpu_capability())


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm, in ``/proc/cpuinfo``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_ticks(cpus: set[int]) -> tuple[int, int] | None:
    """Busy and total clock ticks of ``cpus`` since boot, from ``/proc/stat``; None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return (busy, total) if total else None


def busy_cores(seconds: float = 0.2) -> float | None:
    """How many of the cores this process may run on other processes kept busy over the next ``seconds``.

    Read from ``/proc/stat`` (Linux), less this process's own CPU time; None where the system does not say.
    """
    cpus = _usable_cpus()
    before, own = _cpu_ticks(cpus), time.process_time()
    time.sleep(seconds)
    after, own = _cpu_ticks(cpus), time.process_time() - own
    if before is None or after is None or after[1] <= before[1]:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = (after[0] - before[0]) - own * ticks
    return max(0.0, len(cpus) * busy / (after[1] - before[1]))


def threads_for(usable: int, busy: float, default: int) -> int:
    """zoo's thread count: the cores other processes leave free, rounded, at least 1 and at most ``default``."""
    return max(1, min(default, round(usable - busy)))


def free_threads(default: int, seconds: float = 0.2) -> Choice:
    """The thread count for the load on the cores: :func:`threads_for` of the cores this process may use and of
    :func:`busy_cores` over ``seconds``; ``default`` where the system does not say how busy they are."""
    usable, busy = len(_usable_cpus()), busy_cores(seconds)
    if busy is None:
        return Choice(default, "torch's default: this system does not say how busy its cores are")
    count = threads_for(usable, busy, default)
    return Choice(count, f"other processes kept {busy:.1f} of {usable} cores busy")


# ---- threads -----------------------------------------------------------------------------------------------------


def check_threads(given: object) -> int:
    """``given`` (``--threads``), checked.

    Raises:
        ZooError: it is not a whole number of at least 1.
    """
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise ZooError(f"--threads takes a whole number of threads, 1 or more, not {given!r}")
    return given


def choose_threads(given: int | None) -> Choice:
    """Choose torch's intra-op thread count (see the module's docstring) and set it.

    Args:
        given: ``--threads``, or None to choose.

    Raises:
        ZooError: ``given`` (or ``OMP_NUM_THREADS``) is not a whole number of at least 1.
    """
    inherited = os.environ.get(_THREADS_ENV) if is_child_rank() else None
    if inherited:  # the choice of rank zero, already shared between the processes
        shared, _, reason = inherited.partition("|")
        choice = Choice(int(shared), reason)
    elif given is not None:
        choice = Choice(check_threads(given), "--threads")
    elif os.environ.get("OMP_NUM_THREADS"):
        value = os.environ["OMP_NUM_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise ZooError(f"OMP_NUM_THREADS must be a whole number of threads, 1 or more, not {value!r}")
        choice = Choice(int(value), "OMP_NUM_THREADS")
    else:
        choice = free_threads(_TORCH_THREADS)
    torch.set_num_threads(choice.value)
    return choice


def speed_record(threads: Choice | None, precision: Choice | None, trainer_precision: str) -> dict[str, Any]:
    """What ``metrics.json`` records of a run's speed settings: the CPU's capability (``cpu_capability``), the
    threads it ran with and why (``threads``, ``threads_reason``), its precision and why (``precision``,
    ``precision_reason``; ``trainer_precision`` as the Trainer spells it)."""
    return {
        "cpu_capability": cpu_capability(),
        "threads": torch.get_num_threads(),
        "threads_reason": threads.reason if threads is not None else None,
        "precision": trainer_precision,
        "precision_reason": precision.reason if precision is not None else None,
    }


def share_threads(choice: Choice, processes: int) -> Choice:
    """Share a chosen count between the ``processes`` a launch starts on this machine (one per device).

    A count zoo measured is divided between them; one given (``--threads``, ``OMP_NUM_THREADS``) is each one's.
    ``OMP_NUM_THREADS`` is set to the result, so that Lightning's launcher keeps it and the processes it starts
    begin with it. Nothing changes for one process, or on a rank other than zero (it inherited its share).
    """
    if processes <= 1 or is_child_rank():
        return choice
    given = choice.reason in ("--threads", "OMP_NUM_THREADS")
    shared = (
        choice
        if given
        else Choice(max(1, choice.value // processes), f"{choice.reason}, shared by {processes} processes")
    )
    torch.set_num_threads(shared.value)
    os.environ["OMP_NUM_THREADS"] = str(shared.value)
    os.environ[_THREADS_ENV] = f"{shared.value}|{shared.reason}"
    return shared
