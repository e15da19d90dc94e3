"""zoo refuses devices and nodes that disagree with torchrun or SLURM exactly where Lightning would: each launch's
environment, with a range of Trainer options, is given to a Lightning Trainer (built, then its launcher's own check
called, as ``Trainer.fit`` would) and to :func:`zoo.cli.launchers.check_launcher`, and the verdicts must agree."""

from __future__ import annotations

import os

import lightning as L
import pytest
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from zoo.cli.launchers import check_launcher
from zoo.errors import ZooError

SLURM = {"SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "zoo", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2",
         "SLURM_NNODES": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}  # fmt: skip
TORCHRUN = {"TORCHELASTIC_RUN_ID": "7", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "2",
            "RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0"}  # fmt: skip
#: each launch's environment, by name
LAUNCHES = {
    "slurm": SLURM,
    # an interactive session: Lightning does not use the SLURM environment there
    "slurm-interactive": {**SLURM, "SLURM_JOB_NAME": "interactive"},
    "slurm-bash": {**SLURM, "SLURM_JOB_NAME": "bash"},
    "slurm-one-task": {**SLURM, "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1"},
    "slurm-without-ntasks-per-node": {k: v for k, v in SLURM.items() if k != "SLURM_NTASKS_PER_NODE"},
    "slurm-without-nnodes": {k: v for k, v in SLURM.items() if k != "SLURM_NNODES"},
    "torchrun": TORCHRUN,
    # torchrun inside a SLURM job: Lightning takes torchrun's numbers
    "torchrun-in-slurm": {**SLURM, **TORCHRUN, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"},
    "no-launcher": {},
}
#: (devices, num_nodes, strategy) given to the Trainer
OPTIONS = [(1, 1, "auto"), (2, 1, "auto"), (2, 2, "auto"), (1, 2, "auto"), (4, 1, "auto"), ("auto", 2, "auto"),
           (1, 1, "ddp"), (2, 1, "ddp_spawn"), (1, 4, "ddp_find_unused_parameters_true"), (2, 2, "single_device")]  # fmt: skip


def lightning_refuses(devices: int | str, num_nodes: int, strategy: str) -> bool:
    """Whether Lightning refuses the options in this environment: building the Trainer, or when ``fit`` starts."""
    try:
        trainer = L.Trainer(accelerator="cpu", devices=devices, num_nodes=num_nodes, strategy=strategy, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    except RuntimeError:  # SLURM tasks it cannot place
        return True
    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher):
        return False
    try:  # what the launcher checks first in Trainer.fit
        launcher.cluster_environment.validate_settings(
            num_devices=launcher.num_processes, num_nodes=launcher.num_nodes
        )
    except ValueError:
        return True
    return False


def zoo_refuses(devices: int | str, num_nodes: int, strategy: str) -> bool:
    try:
        check_launcher({"devices": devices, "num_nodes": num_nodes, "strategy": strategy}, "cpu")
    except ZooError:
        return True
    return False


@pytest.mark.parametrize("launch", LAUNCHES)
def test_zoo_refuses_where_lightning_refuses(launch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("SLURM_", "TORCHELASTIC_")) or n in TORCHRUN]:
        monkeypatch.delenv(name)
    for name, value in {**LAUNCHES[launch], "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "12910"}.items():
        monkeypatch.setenv(name, value)  # the Lightning environments write MASTER_* where they are missing
    verdicts = {options: (lightning_refuses(*options), zoo_refuses(*options)) for options in OPTIONS}
    assert {options: v for options, v in verdicts.items() if v[0] != v[1]} == {}
    # how many of OPTIONS Lightning refuses there: none in an interactive session, nor without a launcher
    refused = sum(lightning for lightning, _ in verdicts.values())
    expected = {"slurm": 6, "slurm-without-ntasks-per-node": len(OPTIONS), "slurm-without-nnodes": 5, "torchrun": 4,
                "torchrun-in-slurm": 4, "slurm-one-task": 6}.get(launch, 0)  # fmt: skip
    assert refused == expected
