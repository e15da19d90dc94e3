"""The training precision, chosen for the host by measurement: ``auto_precision: true`` in a recipe.

``auto_precision: true`` (or ``--auto_precision true``) asks for the recipe's reduced precision (``trainer.precision``,
e.g. ``bf16-mixed``; without one, ``bf16-mixed``, or ``16-mixed`` on a GPU without bfloat16) only where it is faster
on this host, and ``32-true`` elsewhere:

- where the hardware has no arithmetic for that type (a CPU without AVX-512 BF16 or AMX, a GPU older than Ampere for
  bfloat16 or Volta for float16), it is known to be slower and is not tried;
- otherwise a few training steps (forward and backward) of the task's network, on a batch of the data's shape, are
  timed in float32 and under autocast, in pairs, for about a second; the reduced precision is kept when its median
  step takes at most :data:`FASTER` of the float32 step's time.

A measurement is cached per host, network (its class, size and layers), input and thread count in
``$ZOO_CACHE_DIR/speed.json`` (default ``~/.cache/zoo``); delete the file to measure again. ``--trainer.precision``
given on the command line is always obeyed. The choice is said in one line on stderr and recorded in
``metrics.json``. Under Lightning's own multi-process launch the other ranks take rank zero's choice; where torchrun
or SLURM starts every process, which cannot share one measurement, ``auto_precision`` gives ``32-true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.cli.environment import is_child_rank, launched_processes
from zoo.cli.speed import Choice, cpu_capability, cpu_flags
from zoo.files import replaced

__all__ = [
    "FASTER",
    "FULL_PRECISION",
    "choose_precision",
    "time_reduced_precision",
    "timing_inputs",
    "training_device",
]

#: the reduced precision is kept when its step takes at most this share of the float32 step's time
FASTER = 0.9
#: what zoo falls back to
FULL_PRECISION = "32-true"
#: Lightning's precision values that compute in a reduced type, and that type
_REDUCED: Mapping[str, torch.dtype] = {
    "bf16-mixed": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
    "16-true": torch.float16,
    "16": torch.float16,
}
#: CPU flags (``/proc/cpuinfo``) of hardware bfloat16 and float16 arithmetic: x86, then Arm
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
_FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16", "asimdhp"})
#: how rank zero hands its choice to the other ranks of a launch (a JSON pair)
_PRECISION_ENV = "_ZOO_PRECISION"
#: the largest batch timed on a CPU: the ratio is what matters, and a CPU step is slow
_CPU_TIMING_BATCH = 32


def training_device(accelerator: object) -> str:
    """The device type a Trainer given ``accelerator`` trains on (``"cpu"``, ``"cuda"``, ``"mps"``, ...)."""
    name = (
        str(accelerator or "auto").lower()
        if isinstance(accelerator, str | None)
        else type(accelerator).__name__
    )
    name = name.lower().removesuffix("accelerator")
    if name in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if name in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu" if name in ("auto", "cpu") else name


def _reduced_for(device: str) -> str | None:
    """The reduced precision to try on ``device`` when the recipe names none."""
    if device == "cpu":
        return "bf16-mixed"
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return None


def _known_slower(device: str, candidate: str) -> str | None:
    """Why ``candidate`` cannot be faster than float32 on ``device``, when the hardware says so; else None."""
    dtype = _REDUCED[candidate]
    kind = "bfloat16" if dtype == torch.bfloat16 else "float16"
    if device == "cpu":
        needed = _BF16_FLAGS if dtype == torch.bfloat16 else _FP16_FLAGS
        if not needed & cpu_flags():
            return f"this CPU ({cpu_capability()}) has no {kind} arithmetic: {candidate} would be emulated, slower"
        return None
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        if (major, minor) < ((8, 0) if dtype == torch.bfloat16 else (7, 0)):
            return f"this GPU (compute capability {major}.{minor}) has no {kind} tensor cores"
        return None
    return f"zoo does not time {candidate} on {device}"


def _float_outputs(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for item in value for t in _float_outputs(item)]
    return []


def time_reduced_precision(
    net: nn.Module, example: Tensor, dtype: torch.dtype, *, seconds: float = 1.0, most: int = 10
) -> float:
    """The time of a training step (forward, then backward of the outputs' sum) under autocast to ``dtype``, over
    the time of the same step in float32: the median over at least 3 pairs of steps, each pair back to back, for
    about ``seconds`` (at most ``most`` pairs), after one unmeasured step of each.

    The network runs in evaluation mode, so that batch norm's running statistics do not move, and its parameters'
    gradients are left as they were.

    Args:
        net: the network, on ``example``'s device.
        example: a batch of inputs ``(B, C, H, W)``.
        dtype: ``torch.bfloat16`` or ``torch.float16``.
    """
    device = example.device

    def step(reduced: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=reduced):
            outputs = _float_outputs(net(example))
        if outputs:
            total = torch.stack([t.float().sum() for t in outputs]).sum()
            if total.requires_grad:
                total.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        for p in net.parameters():
            p.grad = None
        return elapsed

    training, grads = net.training, [p.grad for p in net.parameters()]
    net.eval()
    try:
        with torch.enable_grad():
            step(False), step(True)  # the first calls choose and prepare their kernels
            ratios: list[float] = []
            deadline = time.perf_counter() + seconds
            while len(ratios) < 3 or (len(ratios) < most and time.perf_counter() < deadline):
                full = step(False)
                ratios.append(step(True) / full)
    finally:
        net.train(training)
        for p, grad in zip(net.parameters(), grads, strict=True):
            p.grad = grad
    return statistics.median(ratios)


def _cache_file() -> Path:
    return Path(os.environ.get("ZOO_CACHE_DIR") or Path.home() / ".cache" / "zoo") / "speed.json"


def _read_cache() -> dict[str, Any]:
    try:
        found = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_cache(key: str, ratio: float) -> None:
    """Add a measured ratio to the cache; a cache that cannot be written only costs a measurement next time."""
    path = _cache_file()
    cache = _read_cache()
    cache[key] = {"ratio": round(ratio, 4), "date": time.strftime("%Y-%m-%d")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced(path, suffix=f".{os.getpid()}.partial") as partial:  # processes may write it at once
            partial.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass


def _timing_key(net: nn.Module, example: Tensor, candidate: str) -> str:
    """What a measured ratio depends on: the host, its hardware and torch, the network and its layers, the input, the
    threads."""
    device = example.device
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_capability()
    parts = {
        "host": platform.node(),
        "hardware": hardware,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "network": type(net).__name__,
        "parameters": sum(p.numel() for p in net.parameters()),
        # the layers and their order: the same parameters in another order cost another time
        "layers": hashlib.sha256(repr(net).encode()).hexdigest()[:16],
        "input": list(example.shape),
        "channels_last": example.is_contiguous(memory_format=torch.channels_last),
        "precision": candidate,
    }
    return json.dumps(parts, sort_keys=True)


def _example(net: nn.Module, shape: tuple[int, ...], batch: int, device: str) -> Tensor:
    """A random batch of ``shape``, laid out channels-last when the network's weights are."""
    example = torch.rand(batch, *shape, device=device)
    weights = next((p for p in net.parameters() if p.dim() == 4), None)
    if (
        weights is not None
        and not weights.is_contiguous()
        and weights.is_contiguous(memory_format=torch.channels_last)
    ):
        example = example.contiguous(memory_format=torch.channels_last)
    return example


def choose_precision(
    configured: object,
    *,
    auto: bool,
    given: bool,
    device: str,
    net: nn.Module | None = None,
    shape: tuple[int, ...] | None = None,
    batch: int = 1,
) -> Choice:
    """The Trainer's precision (see the module's docstring).

    Args:
        configured: the config's ``trainer.precision`` (None: Lightning's default, ``32-true``).
        auto: the recipe's ``auto_precision``: choose by measurement.
        given: ``--trainer.precision`` was given on the command line: it is obeyed.
        device: the device type the Trainer trains on (:func:`training_device`).
        net: the network to time; ``shape`` ``(C, H, W)`` and ``batch``: its inputs.

    Returns:
        The precision, as Lightning spells it, and why it was chosen.
    """
    inherited = os.environ.get(_PRECISION_ENV) if is_child_rank() else None
    if inherited:
        value, reason = json.loads(inherited)
        return Choice(value, reason)
    named = FULL_PRECISION if configured is None else str(configured)
    candidate = named if named in _REDUCED else _reduced_for(device)
    if given:
        choice = Choice(named, "given on the command line")
    elif not auto:
        choice = Choice(named, "the recipe's trainer.precision")
    elif (
        launched_processes() > 1
    ):  # every process would time on its own, and might choose apart from the others
        choice = Choice(
            FULL_PRECISION, "torchrun or SLURM started each process: name one with --trainer.precision"
        )
    elif candidate is None:
        choice = Choice(FULL_PRECISION, f"no reduced precision to try on {device}")
    elif (slower := _known_slower(device, candidate)) is not None:
        choice = Choice(FULL_PRECISION, slower)
    elif net is None or shape is None:
        choice = Choice(FULL_PRECISION, "the data gives no input shape to time the network with")
    else:
        choice = _measured(net, shape, batch, device, candidate)
    # whatever the path: the ranks Lightning starts next take this run's choice, never one left by an earlier run
    os.environ[_PRECISION_ENV] = json.dumps([choice.value, choice.reason])
    return choice


def timing_inputs(task: nn.Module, data: object) -> tuple[nn.Module | None, tuple[int, ...] | None, int]:
    """What :func:`choose_precision` times: the network a task trains (its ``net``), and the input shape
    ``(C, H, W)`` and batch size of its :class:`~zoo.data.ZooDataModule`; (None, None, 1) when there is none.

    Data whose shape is known once it is read (the in-memory sets) is read here, as Lightning would read it next.
    Ranks other than zero time nothing: they take rank zero's choice.
    """
    from zoo.data import ZooDataModule

    net = getattr(task, "net", None)
    if not isinstance(net, nn.Module) or not isinstance(data, ZooDataModule) or is_child_rank():
        return None, None, 1
    shape = data.image_shape
    if shape is None:
        data.prepare_data()
        data.setup("fit")
        shape = data.image_shape
    return net, shape, data.batch_size


def _measured(net: nn.Module, shape: tuple[int, ...], batch: int, device: str, candidate: str) -> Choice:
    """``candidate`` or float32, by the time of the network's steps on this host (cached)."""
    on = torch.device(device)
    home = next((p.device for p in net.parameters()), torch.device("cpu"))
    example = _example(net, shape, min(batch, _CPU_TIMING_BATCH) if device == "cpu" else batch, device)
    key = _timing_key(net, example, candidate)
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and isinstance(cached.get("ratio"), int | float):
        ratio, how = float(cached["ratio"]), f"measured on this host on {cached.get('date')}, cached"
    else:
        try:
            net.to(on)
            ratio = time_reduced_precision(net, example, _REDUCED[candidate])
        except RuntimeError as error:  # the network does not take such a batch: float32 is the safe choice
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return Choice(FULL_PRECISION, f"{candidate} could not be timed: {first}")
        finally:
            net.to(home)
            if on.type == "cuda":
                torch.cuda.empty_cache()
        _write_cache(key, ratio)
        how = "measured on this host"
    step = f"{candidate} took {ratio:.2f}x the step time of {FULL_PRECISION}, {how}"
    return Choice(candidate, step) if ratio <= FASTER else Choice(FULL_PRECISION, step)
