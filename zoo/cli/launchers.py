"""The processes a launcher started, against the devices and nodes the Trainer is given.

torchrun and SLURM's ``srun`` start every process of a job themselves, and Lightning checks that
``--trainer.devices`` and ``--trainer.num_nodes`` agree with what they set only once the task, the data and the
Trainer are built, in a ``ValueError`` with a traceback (a ``RuntimeError`` for SLURM tasks it cannot place). The
same rules are checked here, before anything is built, where Lightning would check them:

- torchrun (``TORCHELASTIC_RUN_ID`` set; it comes first, as it may run inside a SLURM job): devices x num_nodes must
  make ``WORLD_SIZE``;
- SLURM (``SLURM_NTASKS`` set, in a job not named ``bash`` or ``interactive``: Lightning leaves those sessions to the
  other environments): devices must equal ``SLURM_NTASKS_PER_NODE`` and num_nodes ``SLURM_NNODES``, each where it is
  set, and more than one task needs ``SLURM_NTASKS_PER_NODE``.

Lightning compares the numbers only where its DDP strategies start processes as scripts (``ddp``, ``deepspeed``,
and ``auto`` on several devices or nodes), not on a single device, for spawned or forked processes, for FSDP under a
launcher, or with a cluster environment of the user's; neither does this module.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from zoo.errors import ZooError

__all__ = ["check_launcher"]


def check_launcher(trainer: Any, device: str) -> None:
    """Check ``--trainer.devices`` and ``--trainer.num_nodes`` against the processes torchrun or SLURM started.

    Args:
        trainer: the Trainer's options (a jsonargparse ``Namespace`` or a mapping).
        device: the kind of device the run trains on (``cpu``, ``cuda``, ``mps``, ``tpu``), as the accelerator
            resolves on this host.

    Raises:
        ZooError: the numbers disagree, in one line saying what the launcher set and what to pass.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if device == "tpu" or _own_cluster_environment(trainer):
        return
    elastic = TorchElasticEnvironment.detect()
    if not elastic and not SLURMEnvironment.detect():
        return
    if not elastic:
        _check_slurm_tasks()
    num_nodes = trainer.get("num_nodes")
    num_nodes = 1 if num_nodes is None else num_nodes
    given = trainer.get("devices")
    devices = _devices_per_node(given, device)
    if (
        devices is None
        or not isinstance(num_nodes, int)
        or not _compared(trainer.get("strategy"), devices, num_nodes)
    ):
        return
    asked = f"--trainer.devices {_shown(given, devices)} --trainer.num_nodes {num_nodes}"
    if elastic:
        _check_torchrun(asked, devices, num_nodes)
    else:
        _check_slurm(asked, devices, num_nodes)


def _variable(name: str) -> int | None:
    """The whole number in the environment variable ``name``; None when it is unset or not a number."""
    text = os.environ.get(name, "").strip()
    return int(text) if text.isdigit() else None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}{'es' if noun.endswith('s') else 's'}"


def _shown(given: object, devices: int) -> str:
    """``--trainer.devices`` as given, with the count it makes when that is not the number itself (auto, -1, a list)."""
    if str(given).strip() == str(devices):  # 2, or "2" from the command line
        return str(devices)
    return f"{given if given is not None else 'auto'} ({_plural(devices, 'device')} here)"


def _check_slurm_tasks() -> None:
    """More than one SLURM task with no ``--ntasks-per-node``: Lightning cannot tell how they are placed."""
    tasks = _variable("SLURM_NTASKS")
    if tasks is not None and tasks > 1 and "SLURM_NTASKS_PER_NODE" not in os.environ:
        raise ZooError(
            f"SLURM started {tasks} tasks (SLURM_NTASKS={tasks}) without --ntasks-per-node, which Lightning needs "
            "to place them: launch with srun --ntasks-per-node=N (one task per device on each node) and "
            "pass --trainer.devices N"
        )


def _check_slurm(asked: str, devices: int, num_nodes: int) -> None:
    """Lightning's rule for SLURM: devices is ``SLURM_NTASKS_PER_NODE`` and num_nodes ``SLURM_NNODES``, where set."""
    per_node, nodes = _variable("SLURM_NTASKS_PER_NODE"), _variable("SLURM_NNODES")
    if (per_node is None or per_node == devices) and (nodes is None or nodes == num_nodes):
        return
    tasks = _variable("SLURM_NTASKS")
    started = _plural(tasks, "task") if tasks is not None else "tasks"
    where = f" on {_plural(nodes, 'node')}" if nodes is not None else ""
    named = [f"{name}={value}" for name, value in (("SLURM_NTASKS_PER_NODE", per_node), ("SLURM_NNODES", nodes))
             if value is not None]  # fmt: skip
    wanted = per_node if per_node is not None else devices, nodes if nodes is not None else num_nodes
    raise ZooError(
        f"{asked} disagree with SLURM's {started}{where} ({', '.join(named)}): "
        f"pass --trainer.devices {wanted[0]} --trainer.num_nodes {wanted[1]}"
    )


def _check_torchrun(asked: str, devices: int, num_nodes: int) -> None:
    """Lightning's rule for torchrun: devices x num_nodes is ``WORLD_SIZE``."""
    world = _variable("WORLD_SIZE")
    if world is None or devices * num_nodes == world:
        return
    local, nodes = _variable("LOCAL_WORLD_SIZE"), _variable("GROUP_WORLD_SIZE")
    named = [f"{name}={value}" for name, value in (("WORLD_SIZE", world), ("LOCAL_WORLD_SIZE", local),
                                                   ("GROUP_WORLD_SIZE", nodes)) if value is not None]  # fmt: skip
    if local and nodes is None and world % local == 0:
        nodes = world // local
    if local and nodes and local * nodes == world:
        raise ZooError(
            f"{asked} disagree with torchrun's {_plural(world, 'process')}, {local} on each of "
            f"{_plural(nodes, 'node')} ({', '.join(named)}): pass --trainer.devices {local} --trainer.num_nodes {nodes}"
        )
    raise ZooError(
        f"{asked} make {devices * num_nodes} processes, and torchrun started {world} (WORLD_SIZE={world}): pass "
        "--trainer.devices (processes on each node) and --trainer.num_nodes whose product is the world size"
    )


def _devices_per_node(devices: object, device: str) -> int | None:
    """The number of devices (processes) on each node that ``--trainer.devices`` makes, as Lightning counts them;
    None where Lightning will refuse the value itself."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if device not in AcceleratorRegistry:
        return None
    accelerator = AcceleratorRegistry[device]["accelerator"]
    try:
        if devices is None or devices == "auto":
            return int(accelerator.auto_device_count())
        return len(accelerator.get_parallel_devices(accelerator.parse_devices(devices)))
    except (MisconfigurationException, ValueError, TypeError):
        return None


def _class_of(class_path: object) -> type | None:
    if not isinstance(class_path, str):
        return None
    module, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except (ImportError, ValueError):
        return None
    return found if isinstance(found, type) else None


def _options(config: object) -> dict[str, Any]:
    init_args = getattr(config, "init_args", None)
    if init_args is None:
        return {}
    return dict(init_args.as_dict() if hasattr(init_args, "as_dict") else vars(init_args))


def _own_cluster_environment(trainer: Any) -> bool:
    """Whether the user gave a cluster environment (a plugin, or the strategy's): Lightning uses it, not the
    launcher's variables."""
    from lightning.fabric.plugins.environments import ClusterEnvironment

    plugins = trainer.get("plugins")
    for plugin in plugins if isinstance(plugins, list | tuple) else [plugins]:
        found = _class_of(getattr(plugin, "class_path", None))
        if found is not None and issubclass(found, ClusterEnvironment):
            return True
    return _options(trainer.get("strategy")).get("cluster_environment") is not None


def _compared(strategy: object, devices: int, num_nodes: int) -> bool:
    """Whether Lightning compares the launcher's numbers with the Trainer's under ``strategy``: it does where a DDP
    strategy starts its processes as scripts (``start_method="popen"``)."""
    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

    if strategy is None or strategy == "auto":
        if num_nodes > 1:
            return True
        interactive = hasattr(sys, "ps1") or bool(sys.flags.interactive)  # Lightning forks there instead
        return devices > 1 and not interactive
    if isinstance(strategy, str):
        if strategy not in StrategyRegistry:
            return False
        found, options = (
            StrategyRegistry[strategy]["strategy"],
            dict(StrategyRegistry[strategy]["init_params"]),
        )
    else:
        found, options = _class_of(getattr(strategy, "class_path", None)), _options(strategy)
    if not isinstance(found, type) or not issubclass(found, DDPStrategy):
        return False
    default = inspect.signature(found.__init__).parameters.get("start_method")
    start = options.get("start_method", default.default if default is not None else "popen")
    return start == "popen"
