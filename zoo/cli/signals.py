"""Stopping a fit on a signal without losing anything: Ctrl-C (SIGINT), SIGTERM and SLURM's requeue signal (SIGUSR1).

While the training loop runs, the first of these signals only asks for a stop: the run finishes the optimiser step
it is in, writes ``last.ckpt`` (atomically, as :class:`~zoo.callbacks.LastCheckpoint` always does), and the process
exits with ``128 + the signal's number`` (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1). The checkpoint is
taken where Lightning's own step checkpoints are taken (the end of a training batch; at the end of the epoch, after
validation, when the batch was the epoch's last), so a run resumed from it ends with the same weights as one never
interrupted. A second signal, or one that arrives outside the training loop (setting up, the final evaluation),
stops the process at once with the same status; ``last.ckpt`` is then the last one written.

Under DDP, torchrun or SLURM every rank has to stop after the same step, or the others wait for it forever. The
ranks agree through an all-reduce of the signal each rank has received, on a CPU (gloo) group, started at the end of
one step and read at the end of the next, so that it costs neither a device synchronisation nor a wait: a
multi-process run stops one step later than a single process. Lightning's own handling (a SIGTERM flag read by its
loops, a SLURM checkpoint saved from inside the signal handler) is replaced while training runs, since it saves
wherever the signal lands.

For SLURM's requeue signal, when Lightning runs with its ``SLURMEnvironment`` and ``auto_requeue`` (its default),
rank zero asks SLURM to requeue the job (``scontrol requeue``) once ``last.ckpt`` is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint

from zoo.callbacks import LastCheckpoint
from zoo.cli.environment import is_child_rank

__all__ = ["STOP_SIGNALS", "Interrupted", "StopOnSignal", "answer_signals", "exit_status"]

#: the signals that stop a fit cleanly: Ctrl-C, ``kill``/SLURM/torchrun's SIGTERM, SLURM's requeue signal
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def exit_status(signum: int) -> int:
    """The exit status of a process stopped by signal ``signum``: ``128 + signum``, as shells report it."""
    return 128 + int(signum)


def _name(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupted(BaseException):
    """A fit stopped by a signal (a ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception``
    swallows it).

    Args:
        signum: the signal.
        message: what to tell the user (rank zero of a run says where its ``last.ckpt`` is), or None.
    """

    def __init__(self, signum: int, message: str | None = None) -> None:
        super().__init__(signum, message)
        self.signum, self.message = int(signum), message

    @property
    def status(self) -> int:
        """The process's exit status."""
        return exit_status(self.signum)


@dataclass
class _Requests:
    """What the signal handler shares with :class:`StopOnSignal`."""

    program: str = "zoo"  # what messages start with
    graceful: bool = False  # inside the training loop: ask for a stop instead of stopping
    signum: int = 0  # the signal asked for a stop with (0: none)


_REQUESTS = _Requests()


def _handle(signum: int, frame: FrameType | None) -> None:
    if _REQUESTS.graceful and not _REQUESTS.signum:
        _REQUESTS.signum = signum
        # os.write: print() in a handler can collide with the main thread's own printing
        if not is_child_rank():
            notice = f"{_REQUESTS.program}: {_name(signum)}: stopping after this step; send it again to stop at once"
            os.write(2, f"{notice}\n".encode())
        return
    raise Interrupted(signum)


def _install() -> dict[int, Any]:
    """Point the stop signals at :func:`_handle`; returns the handlers they had (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, _handle)
    return previous


@contextmanager
def _stop_signals_handled(program: str) -> Iterator[None]:
    previous = _install()
    _REQUESTS.program, _REQUESTS.graceful, _REQUESTS.signum = program, False, 0
    try:
        yield
    finally:
        _REQUESTS.graceful, _REQUESTS.signum = False, 0
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def answer_signals(program: str, run: Callable[[], int]) -> int:
    """Run a command with the stop signals handled; returns its exit status.

    Args:
        program: what the message starts with (``zoo fit``).
        run: the command; returns its exit status.

    Returns:
        What ``run`` returns, or ``128 + signum`` when a signal stopped it (one line on stderr says which, and,
        after a clean stop, where the run was saved).
    """
    try:
        with _stop_signals_handled(program):
            return run()
    except Interrupted as stop:
        if stop.message is not None:
            print(f"{program}: {stop.message}", file=sys.stderr)
        elif not is_child_rank():
            print(f"{program}: stopped by {_name(stop.signum)}", file=sys.stderr)
        return stop.status


def _requeue() -> str:
    """Ask SLURM to requeue this job, as Lightning's auto-requeue does; says what came of it."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        if array_job
        else os.environ.get("SLURM_JOB_ID", "")
    )
    if not job:
        return "no SLURM job to requeue"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"requeueing job {job} failed ({error}): resubmit it"
    if done.returncode != 0:
        return (
            f"requeueing job {job} failed ({' '.join(done.stderr.split()) or done.returncode}): resubmit it"
        )
    return f"job {job} requeued"


class StopOnSignal(Checkpoint):
    """Stop training after the current step on SIGINT, SIGTERM or SIGUSR1, with ``last.ckpt`` written.

    A :class:`~lightning.pytorch.callbacks.Checkpoint`, so that Lightning runs it after the other checkpoint
    callbacks: give it after the :class:`~zoo.callbacks.LastCheckpoint` it saves with. It works together with
    :func:`answer_signals`, which installs the handlers and turns the stop into an exit status.

    Args:
        last: the callback that writes the run's ``last.ckpt``.
        resume_hint: how to resume, said after the checkpoint's path (``--ckpt_path RUN/last.ckpt``).
    """

    def __init__(self, last: LastCheckpoint, resume_hint: str = "") -> None:
        self.last = last
        self.resume_hint = resume_hint
        self._group: Any = None
        self._pending: tuple[Any, Any] | None = None
        self._at_epoch_end = 0

    # ---- taking over the signals while the loop runs ---------------------------------------------------------
    # Lightning registers its own SIGTERM handling when a fit starts; it is replaced here, and Lightning puts back
    # what it found (answer_signals' handlers) when the fit ends.

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take the signals before the sanity check (outside the training loop: they stop at once)."""
        _install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take the signals, to stop after a step; under several processes, make the group the ranks agree in."""
        _install()
        _REQUESTS.graceful = True
        self._pending, self._at_epoch_end = None, 0
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            self._group = dist.new_group(backend="gloo")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Signals stop at once again; the last agreement is waited for (every rank started it)."""
        _REQUESTS.graceful = False
        self._finish_agreement()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Signals stop at once again."""
        _REQUESTS.graceful = False
        self._pending = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Release the agreement's group."""
        if self._group is not None:
            if dist.is_initialized():
                dist.destroy_process_group(self._group)
            self._group = None

    # ---- agreeing on a stop --------------------------------------------------------------------------------

    def _agreed(self) -> int:
        """The signal every rank agrees to stop for (0: none): this rank's alone, or under several processes the
        largest any rank had received by the end of the previous step."""
        if self._group is None:
            return _REQUESTS.signum
        agreed = 0
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            agreed = int(flag.item())
        flag = torch.tensor([_REQUESTS.signum], dtype=torch.int32)
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True), flag)
        return agreed

    def _finish_agreement(self) -> None:
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None

    # ---- stopping ------------------------------------------------------------------------------------------

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """After a step: stop when asked to, saving ``last.ckpt`` unless it was written at this step; for the
        epoch's last batch, stop at the end of the epoch, after validation and the epoch's checkpoint. A batch
        whose gradients are accumulated for a later step is no step: the stop waits for it."""
        signum = self._agreed()  # every rank, every batch: the ranks' all-reduces must pair up
        if not signum or self._at_epoch_end:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._at_epoch_end = signum
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        if self.last.saved_step != trainer.global_step:
            self.last.save(trainer)
        self._stop(trainer, signum)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop after the epoch's checkpoint when a stop was asked for during its last step."""
        if self._at_epoch_end:
            self._stop(trainer, self._at_epoch_end)

    def _stop(self, trainer: L.Trainer, signum: int) -> None:
        self._finish_agreement()
        _REQUESTS.graceful = False
        message = None
        if trainer.is_global_zero:
            path: Path = self.last.path
            message = f"stopped by {_name(signum)} after step {trainer.global_step}; {path} holds the run"
            if self.resume_hint:
                message += f"; resume with {self.resume_hint}"
            if _slurm_requeues(trainer, signum):
                message += f"; {_requeue()}"
        raise Interrupted(signum, message)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to keep: a resumed run starts with no stop asked for."""
        return {}


def _slurm_requeues(trainer: L.Trainer, signum: int) -> bool:
    """Whether Lightning runs under SLURM with auto-requeue, and ``signum`` is its requeue signal."""
    # the trainer's cluster environment, as Lightning's own signal handling reads it (a single-device strategy
    # keeps none of its own)
    environment = getattr(getattr(trainer, "_accelerator_connector", None), "cluster_environment", None)
    return (
        isinstance(environment, SLURMEnvironment)
        and environment.auto_requeue
        and signum == (environment.requeue_signal or signal.SIGUSR1)
    )
