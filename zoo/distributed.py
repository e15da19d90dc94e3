"""Failures that every process of a multi-process run (DDP, torchrun, SLURM) stops with together.

A rank that stops alone leaves the others waiting in their next collective: for ever on NCCL, and on gloo until its
connection drops, then with a traceback. So a failure one rank meets is made known to every rank at a point they all
pass, and every rank raises the same :class:`~zoo.errors.ZooError`, marked ``every_rank``: zoo's command line has
rank zero say it in one line, and the other ranks end quietly with the same exit status.

Files are written by rank zero alone, so a write that failed is rank zero's to tell (:func:`raise_from_rank_zero`,
one broadcast where the write was). A batch that cannot be made can be any rank's (:class:`FailureVote`, an
all-reduce of one number a batch on a CPU group).
"""

from __future__ import annotations

from typing import Any, TypeVar

import lightning as L
import torch
import torch.distributed as dist

from zoo.errors import WriteError, ZooError

__all__ = ["FailureVote", "on_every_rank", "raise_from_rank_zero"]

E = TypeVar("E", bound=ZooError)


def on_every_rank(error: E) -> E:
    """``error``, marked as raised by every rank together (rank zero alone says it)."""
    error.every_rank = True
    return error


def raise_from_rank_zero(trainer: L.Trainer, failure: str | None, kind: type[ZooError] = WriteError) -> None:
    """Stop every rank when rank zero could not write a file.

    Every rank calls it at the same point, after rank zero tried the write; under several processes rank zero's
    ``failure`` is broadcast to the others (what they pass is ignored).

    Args:
        trainer: the run's Trainer.
        failure: rank zero's one-line message, or None when the write succeeded.
        kind: the error raised.

    Raises:
        ZooError: ``kind(failure)``, marked ``every_rank``, on every rank, when rank zero's ``failure`` is not None.
    """
    if trainer.world_size > 1:
        failure = trainer.strategy.broadcast(failure, src=0)
    if failure is not None:
        raise on_every_rank(kind(failure))


class FailureVote:
    """The ranks of a run agreeing, batch by batch, whether any of them met a failure.

    Make it on every rank at the same point once the process group is up (a DataModule's ``setup``), and call
    :meth:`first` on every rank for every batch of a loop that gives each rank as many batches (training,
    validation, testing: not prediction). Each call is one all-reduce of one number on a CPU (gloo) group of the
    vote's own, so that no device is synchronised; the messages are gathered only after a failure. Under one
    process the vote is inactive and costs nothing.
    """

    def __init__(self) -> None:
        self._group: Any = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self._group = dist.new_group(backend="gloo")

    @property
    def active(self) -> bool:
        """Whether there are other ranks to agree with."""
        return self._group is not None

    def first(self, failure: str | None) -> str | None:
        """The failure of the lowest rank that met one this batch (this rank's ``failure`` or None), or None."""
        if self._group is None:
            return failure
        met = torch.tensor([failure is not None], dtype=torch.int32)
        dist.all_reduce(met, op=dist.ReduceOp.MAX, group=self._group)
        if not met.item():
            return None
        failures: list[str | None] = [None] * dist.get_world_size(self._group)
        dist.all_gather_object(failures, failure, group=self._group)
        return next(found for found in failures if found is not None)

    def close(self) -> None:
        """Release the vote's group."""
        if self._group is not None and dist.is_initialized():
            dist.destroy_process_group(self._group)
        self._group = None
