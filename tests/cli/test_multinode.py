"""Two nodes of one process each, on one machine over gloo: launched by two ``torchrun`` agents, and the way SLURM
launches a job (its environment variables, one process per task). Each trains to the test metrics and weights of
one process with the same global batch, writes one run folder and one W&B run, and resumes after a kill (torchrun)
or after SLURM's requeue signal (SIGUSR1, which also asks SLURM to requeue the job)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import make_idx_dataset

from zoo.cli import main

TESTS = Path(__file__).resolve().parents[1]
RECIPE = "lenet5_fashionmnist"
#: 300 fabricated images, 100 held out: 200 to train on; a global batch of 64 makes 4 steps an epoch, 8 in all
STEPS = 8
#: the environment of every launched process: offline W&B, the probes importable, no inherited launcher variables
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_", "MASTER_"))},
    "WANDB_MODE": "offline",
    "PYTHONPATH": str(TESTS),
}


def fit_args(data: Path, runs: Path, *extra: str, batch_size: int = 64) -> list[str]:
    """Two epochs of LeNet-5, no augmentation (it is seeded by rank), ``last.ckpt`` every 3 steps."""
    return [
        "--recipe", RECIPE,
        "--data.init_args.root", str(data),
        "--data.init_args.val_size", "100",
        "--data.init_args.batch_size", str(batch_size),
        "--data.init_args.flip", "false",
        "--trainer.default_root_dir", str(runs),
        "--trainer.accelerator", "cpu",
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--save_every_n_steps", "3",
        *extra,
    ]  # fmt: skip


def two_nodes(data: Path, runs: Path, run_dir: Path, probe: dict[str, Any] | None = None) -> list[str]:
    """The same run on two nodes of one process, 32 images a process: the global batch stays 64."""
    extra = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp",
             "--run_dir", str(run_dir)]  # fmt: skip
    if probe is not None:
        config = runs.parent / "probe.yaml"
        config.write_text(yaml.safe_dump({"trainer": {"callbacks": [probe]}}))
        extra += ["--config", str(config)]
    return fit_args(data, runs, *extra, batch_size=32)


def resume_args(run_dir: Path) -> list[str]:
    return ["--recipe", RECIPE, "--ckpt_path", str(run_dir / "last.ckpt")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    commands: Sequence[tuple[list[str], dict[str, str]]], logs: Path, timeout: float = 150
) -> list[int]:
    """Start the processes together (output to files: a W&B service left by a killed process keeps pipes open);
    their exit statuses."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for index, (command, env) in enumerate(commands):
        with open(logs / f"{index}.log", "w") as out:
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                              cwd=TESTS.parent, stdin=subprocess.DEVNULL))  # fmt: skip
    try:
        return [process.wait(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def log(logs: Path, index: int) -> str:
    return (logs / f"{index}.log").read_text()


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=300, n_test=50)


@pytest.fixture(scope="module")
def one_process(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of the same recipe trained by one process, a batch of 64."""
    runs = tmp_path_factory.mktemp("one")
    assert main("fit", fit_args(data, runs, "--trainer.logger", "false", "--trainer.callbacks", "[]")) == 0
    (folder,) = (runs / RECIPE).iterdir()
    return folder


def assert_trained_as_one_process(run_dir: Path, one_process: Path) -> None:
    got, expected = load(run_dir / "last.ckpt"), load(one_process / "last.ckpt")
    assert got["global_step"] == expected["global_step"] == STEPS
    for name, tensor in expected["state_dict"].items():  # the same steps; sums taken in another order
        torch.testing.assert_close(got["state_dict"][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    metrics, reference = (json.loads((f / "metrics.json").read_text()) for f in (run_dir, one_process))
    assert metrics["devices"] == 2 and reference["devices"] == 1
    assert metrics["test"]["test_acc"] == reference["test"]["test_acc"]
    assert metrics["test"]["test_loss"] == pytest.approx(reference["test"]["test_loss"], rel=1e-4)


def test_two_torchrun_nodes_train_as_one_process_and_resume_after_a_kill(
    data: Path, one_process: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run_dir = runs / RECIPE / "two-nodes"
    run_dir.parent.mkdir(parents=True)
    port = free_port()

    def agents(args: list[str]) -> list[tuple[list[str], dict[str, str]]]:
        torchrun = [str(Path(sys.executable).with_name("torchrun")), "--nnodes", "2", "--nproc_per_node", "1",
                    "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
        return [([*torchrun, "--node_rank", str(node), "-m", "zoo.fit", *args], ENV) for node in (0, 1)]

    # both processes SIGKILL themselves before step 7: last.ckpt is the one of step 6, mid-epoch
    kill = {"class_path": "probes.KillAtStep", "init_args": {"step": 7, "marker": str(tmp_path / "killed")}}
    statuses = launch(agents(two_nodes(data, runs, run_dir, kill)), tmp_path / "killed-logs")
    assert all(status != 0 for status in statuses), [log(tmp_path / "killed-logs", i)[-2000:] for i in (0, 1)]
    assert load(run_dir / "last.ckpt")["global_step"] == 6
    assert not (run_dir / "metrics.json").exists()

    statuses = launch(agents(resume_args(run_dir)), tmp_path / "resumed-logs")
    assert statuses == [0, 0], [log(tmp_path / "resumed-logs", i)[-3000:] for i in (0, 1)]
    assert log(tmp_path / "resumed-logs", 0).strip().splitlines()[-1] == f"run folder: {run_dir}"
    assert "run folder" not in log(tmp_path / "resumed-logs", 1)  # rank one reports nothing

    assert_trained_as_one_process(run_dir, one_process)
    assert [p.name for p in (runs / RECIPE).iterdir()] == ["two-nodes"]  # one run folder, nothing beside it
    # one W&B run, continued by the resumed launch: one offline folder a launch, written by rank zero alone
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{RECIPE}-two-nodes") for p in offline)


def test_a_slurm_job_of_two_tasks_trains_as_one_process_and_resumes_after_the_requeue_signal(
    data: Path, one_process: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run_dir = runs / RECIPE / "slurm-4242"
    run_dir.parent.mkdir(parents=True)
    bin_dir = tmp_path / "bin"  # scontrol, as SLURM's, recording what it is asked
    bin_dir.mkdir()
    requests = tmp_path / "scontrol.txt"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {requests}\n')
    (bin_dir / "scontrol").chmod(0o755)
    port = free_port()

    def tasks(args: list[str], restarts: int) -> list[tuple[list[str], dict[str, str]]]:
        """What ``srun`` starts for ``sbatch --nodes 2 --ntasks-per-node 1``: one process a task."""
        return [
            ([sys.executable, "-m", "zoo.fit", *args], {
                **ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}",
                "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "zoo", "SLURM_NNODES": "2", "SLURM_NTASKS": "2",
                "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": str(task), "SLURM_LOCALID": "0",
                "SLURM_NODEID": str(task), "SLURM_NODELIST": "127.0.0.1", "SLURM_RESTART_COUNT": str(restarts),
                "MASTER_PORT": str(port),
            })
            for task in (0, 1)
        ]  # fmt: skip

    # SLURM's requeue signal reaches task one (rank 1) before step 5: the tasks agree to stop after step 7
    signal = {"class_path": "probes.SignalAtStep",
              "init_args": {"step": 5, "name": "SIGUSR1", "marker": str(tmp_path / "signalled"), "ranks": [1]}}  # fmt: skip
    statuses = launch(tasks(two_nodes(data, runs, run_dir, signal), 0), tmp_path / "stopped-logs")
    assert statuses == [138, 138], [log(tmp_path / "stopped-logs", i)[-3000:] for i in (0, 1)]
    assert log(tmp_path / "stopped-logs", 0).strip().splitlines()[-1] == (
        f"zoo fit: stopped by SIGUSR1 after step 7; {run_dir / 'last.ckpt'} holds the run; "
        f"resume with --ckpt_path {run_dir / 'last.ckpt'}; job 4242 requeued"
    )
    assert requests.read_text() == "requeue 4242\n"  # by rank zero alone
    assert load(run_dir / "last.ckpt")["global_step"] == 7
    assert not (run_dir / "last.ckpt.partial").exists() and not (run_dir / "metrics.json").exists()

    statuses = launch(tasks(resume_args(run_dir), 1), tmp_path / "resumed-logs")
    assert statuses == [0, 0], [log(tmp_path / "resumed-logs", i)[-3000:] for i in (0, 1)]
    assert_trained_as_one_process(run_dir, one_process)
    assert [p.name for p in (runs / RECIPE).iterdir()] == ["slurm-4242"]
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{RECIPE}-slurm-4242") for p in offline)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_launch_of_several_processes_without_run_dir_is_refused_by_every_process(
    rank: int, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--run_dir`` the processes cannot agree on a run folder: rank zero refuses too, instead of waiting
    for the others forever."""
    for name, value in {"SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "zoo", "SLURM_NNODES": "2", "SLURM_NTASKS": "2",
                        "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": str(rank), "SLURM_LOCALID": "0",
                        "SLURM_NODEID": str(rank)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    def wait_for_the_others(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("this process would now wait for the other one, which has stopped")

    monkeypatch.setattr("torch.distributed.init_process_group", wait_for_the_others)
    args = fit_args(data, tmp_path / "runs", "--trainer.num_nodes", "2", "--trainer.devices", "1",
                    "--trainer.strategy", "ddp")  # fmt: skip
    assert main("fit", args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "zoo fit: error: this process is one rank of a multi-process launch (torchrun, SLURM): pass --run_dir so "
        "that every process writes to the same run folder"
    )
    assert not (tmp_path / "runs").exists()
