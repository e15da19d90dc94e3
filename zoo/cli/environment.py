"""What a command needs to know about its process: its rank, the hardware, and quiet defaults.

W&B goes offline by itself when nobody is logged in (it never prompts), and Lightning's adverts and the warnings
that say nothing to a zoo user are filtered out.
"""

from __future__ import annotations

import logging
import netrc
import os
import platform
import time
import warnings

__all__ = [
    "hardware",
    "is_child_rank",
    "launched_processes",
    "note_launcher",
    "outlive_launcher",
    "quiet_defaults",
    "wandb_logged_in",
]

#: environment variables through which launchers (Lightning's, torchrun, SLURM) give a process its rank
_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
#: the process id of the command's first process, which Lightning's launcher starts the other ranks from
_LAUNCHER_ENV = "_ZOO_LAUNCHER_PID"
#: the longest a rank waits for that process to end (it may be finishing a W&B run)
_LAUNCHER_WAIT = 600.0


def is_child_rank() -> bool:
    """Whether this process is a rank other than zero of a multi-process launch."""
    return any(int(os.environ.get(name, "0")) != 0 for name in _RANK_VARIABLES)


def launched_processes() -> int:
    """How many processes a launcher that starts each of them itself (torchrun, SLURM's ``srun``) started for
    this job, as Lightning reads them; 1 for none (one process, or Lightning's own launcher, which starts the
    others from the first)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        return int(os.environ.get("WORLD_SIZE", "1"))
    if SLURMEnvironment.detect():
        return int(os.environ.get("SLURM_NTASKS", "1"))
    return 1


def note_launcher() -> None:
    """Note this process, unless it is a rank other than zero, as the one from which Lightning's launcher starts the
    other ranks of a multi-process run (they inherit the note: see :func:`outlive_launcher`)."""
    if not is_child_rank():
        os.environ[_LAUNCHER_ENV] = str(os.getpid())


def outlive_launcher() -> None:
    """Wait, in a rank that Lightning's launcher started, until the launching process (rank zero) has ended.

    Lightning's launcher kills every process of the run, rank zero too, as soon as one of the ranks it started ends
    with a failure status; a rank that stops with the others (with the status rank zero will end with) must let rank
    zero finish first. Returns at once in any other process (rank zero, or a rank started by torchrun or SLURM),
    and after :data:`_LAUNCHER_WAIT` seconds at most.
    """
    launcher = os.environ.get(_LAUNCHER_ENV)
    if not is_child_rank() or launcher != str(os.getppid()):
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # a rank zero still waiting on this rank stops waiting
        dist.destroy_process_group()
    deadline = time.monotonic() + _LAUNCHER_WAIT
    while str(os.getppid()) == launcher and time.monotonic() < deadline:
        time.sleep(0.05)


def wandb_logged_in() -> bool:
    """Whether W&B has credentials (``WANDB_API_KEY`` or a ``~/.netrc`` entry), so that it can run online."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _without_adverts(record: logging.LogRecord) -> bool:
    """Drop Lightning's suggestions to install its cloud services, and its notes on our own model summary."""
    return not record.getMessage().startswith(
        (
            "💡 Tip",
            "Trainer already configured with model summary",
            "The following callbacks returned in `LightningModule.configure_callbacks` will override",
        )
    )


def quiet_defaults() -> None:
    """W&B offline without a login and silent; no Lightning adverts; no warnings that do not concern zoo users, nor
    tracebacks from log files that cannot be written."""
    if "WANDB_MODE" not in os.environ and not wandb_logged_in():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    # a log file that cannot be written (W&B's debug.log on a full disk) is dropped, not answered with a traceback
    logging.raiseExceptions = False
    for handler in logging.getLogger("lightning.pytorch").handlers:
        if _without_adverts not in handler.filters:
            handler.addFilter(_without_adverts)
    warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r"LightningCLI.s args parameter is intended.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings(
        "ignore", message=r".*callbacks used to create the checkpoint need to be provided.*"
    )


def hardware() -> str:
    """The device a run trains on, in words, for ``metrics.json`` and the benchmarks' reports."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
