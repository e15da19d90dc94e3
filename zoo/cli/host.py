"""What this host has, against what a run asks for: the accelerator, the precision, the strategy and the number of
devices Lightning is given (and, through :mod:`zoo.cli.launchers`, the processes torchrun or SLURM started), and the
folders a run writes to. Each is answered in one line saying what to use instead, before anything is built
(:func:`zoo.cli.values.check_values` calls these).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path
from typing import Any

from zoo.cli.launchers import check_launcher
from zoo.errors import ZooError

__all__ = ["check_host", "check_writable"]

#: accelerator names Lightning takes besides its registry's
_ACCELERATORS = ("auto", "gpu")
#: precision values that need a GPU: float16 autocast (Lightning runs bf16-mixed instead on a CPU, unasked)
_GPU_ONLY_PRECISIONS = frozenset({"16-mixed", "16"})
_BF16_PRECISIONS = frozenset({"bf16-mixed", "bf16-true", "bf16"})


def _suggest(given: str, names: list[str]) -> str:
    close = difflib.get_close_matches(given, names, n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def _device_available(name: str) -> bool:
    """Whether this host has the device an accelerator name asks for (gpu: CUDA or MPS)."""
    import torch
    from lightning.pytorch.accelerators import MPSAccelerator

    if name == "cpu":
        return True
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return MPSAccelerator.is_available()
    if name == "gpu":
        return torch.cuda.is_available() or MPSAccelerator.is_available()
    if name == "tpu":
        if importlib.util.find_spec("torch_xla") is None:
            return False
        from lightning.pytorch.accelerators import XLAAccelerator

        return bool(XLAAccelerator.is_available())
    return True  # an accelerator registered by a plugin says for itself


def check_host(trainer: Any, *, auto_precision: bool = False) -> None:
    """Check that this host has the accelerator, precision and strategy the Trainer is asked for, and that its devices
    and nodes agree with the processes a launcher started (:func:`zoo.cli.launchers.check_launcher`).

    Args:
        trainer: the Trainer's options.
        auto_precision: zoo chooses the precision by measurement (:mod:`zoo.cli.precision`): it is not checked.

    Raises:
        ZooError: an unknown name, a device or library this host lacks, or devices and nodes that disagree with the
            launcher, in one line saying what to use instead.
    """
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    accelerator = trainer.get("accelerator")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(accelerator, str):
        names = sorted({*_ACCELERATORS, *AcceleratorRegistry.available_accelerators()})
        name = accelerator.lower()
        if name not in names:
            raise ZooError(
                f"--trainer.accelerator {accelerator!r} is not an accelerator; {_suggest(name, names)}"
                f"choose one of {', '.join(names)}"
            )
        if not _device_available(name):
            has = "a CUDA GPU" if torch.cuda.is_available() else "no GPU that torch can use"
            raise ZooError(
                f"--trainer.accelerator {accelerator} asks for a device this host lacks (it has {has}); "
                "use --trainer.accelerator cpu, or auto to take the best device there is"
            )
        if name == "cpu":
            device = "cpu"
        elif name in ("mps", "tpu"):
            device = name
    _check_devices(trainer.get("devices"), device)
    check_launcher(trainer, device)
    precision = trainer.get("precision")
    text = str(precision) if precision is not None else ""
    if text and not auto_precision:
        if text in _GPU_ONLY_PRECISIONS and device == "cpu":
            raise ZooError(
                f"--trainer.precision {text} (float16 mixed precision) needs a CUDA GPU, and this run trains on the "
                "CPU; use bf16-mixed (bfloat16) or 32-true there"
            )
        if text in _BF16_PRECISIONS and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise ZooError(
                f"--trainer.precision {text} needs a GPU with bfloat16 (Ampere or newer); use 16-mixed or 32-true"
            )
        if text.startswith("transformer-engine") and importlib.util.find_spec("transformer_engine") is None:
            raise ZooError(
                f"--trainer.precision {text} needs NVIDIA's transformer_engine, which is not installed; "
                "use bf16-mixed, 16-mixed or 32-true"
            )
    strategy = trainer.get("strategy")
    if isinstance(strategy, str) and strategy != "auto":
        names = sorted({"auto", *StrategyRegistry.available_strategies()})
        if strategy not in names:
            raise ZooError(
                f"--trainer.strategy {strategy!r} is not a strategy; {_suggest(strategy, names)}"
                "use auto, or ddp for several devices"
            )
        if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
            raise ZooError(f"--trainer.strategy {strategy} needs deepspeed, which is not installed; use ddp")
        if strategy.startswith(("fsdp", "deepspeed")) and device != "cuda":
            raise ZooError(
                f"--trainer.strategy {strategy} needs CUDA GPUs, and this run trains on the {device.upper()}; "
                "use ddp (or auto)"
            )
        if (strategy.startswith(("xla", "single_xla", "single_tpu"))) and not _device_available("tpu"):
            raise ZooError(
                f"--trainer.strategy {strategy} needs a TPU, which this host lacks; use auto or ddp"
            )


def _check_devices(devices: object, device: str) -> None:
    """``--trainer.devices``: a count (1 or more; on a GPU also -1, all of them), a list of device indices, or auto."""
    if isinstance(devices, str) and devices.strip().removeprefix("-").isdigit():  # "2" from the command line
        devices = int(devices)
    if devices is None or devices == "auto" or (isinstance(devices, str) and device != "cpu"):
        return  # a GPU's "0,1": Lightning reads it
    if isinstance(devices, list) and device != "cpu":
        return
    if (
        isinstance(devices, int)
        and not isinstance(devices, bool)
        and (devices >= 1 or (devices == -1 and device != "cpu"))
    ):
        return
    wanted = (
        "a number of processes (1 or more), or auto"
        if device == "cpu"
        else ("a number of devices (1 or more), -1 for all of them, a list of device indices, or auto")
    )
    raise ZooError(f"--trainer.devices must be {wanted} on the {device.upper()}, got {devices!r}")


def check_writable(folder: Path, key: str) -> None:
    """Check that ``folder`` is, or can be made, a folder this process writes into.

    Args:
        folder: the folder (it need not exist yet: its nearest existing parent is checked then).
        key: the option that named it, for the message.

    Raises:
        ZooError: a file is in the way, or the folder (or the parent it would be made in) is not writable.
    """
    folder = folder.expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ZooError(f"{key} {folder}: {existing} is a broken link; remove it or choose another folder")
        existing = existing.parent
    if not existing.is_dir():
        raise ZooError(f"{key} {folder}: {existing} is a file, not a folder; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f" (it would be made in {existing})"
        raise ZooError(f"{key} {folder} is not writable{made}; choose a folder you can write to")
