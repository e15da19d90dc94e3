"""Faults met by one rank of a run on two CPU processes (DDP over gloo, started by Lightning's launcher as ``zoo fit
--trainer.devices 2`` starts them): a full disk while ``best.ckpt`` is written (rank zero alone writes), and an image
that does not decode in the other rank's batch. Every rank stops, none waits for the other for ever, rank zero says
why in one line, no rank prints a traceback, and the checkpoint written before the fault is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import make_colour_folders
from PIL import Image
from torch.utils.data import DistributedSampler

from zoo.data import FolderDataModule

TESTS = Path(__file__).resolve().parents[1]
#: the environment of the run: offline W&B, the probes importable, no launcher variables from outside
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_", "MASTER_"))},
    "WANDB_MODE": "offline",
    "PYTHONPATH": str(TESTS),
}
#: 3 classes of 8 images, 19 held in for training; 2 processes of 4 images a batch: 3 steps an epoch
STEPS = 3


def start_on_two_processes(photos: Path, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """Start ``zoo fit`` of one epoch on two processes, ``last.ckpt`` after every step; :func:`finish` waits."""
    command = [sys.executable, "-m", "zoo.fit", "--recipe", "folder_lenet5", "--data.root", str(photos),
               "--data.batch_size", "4", "--data.num_workers", "0", "--run_dir", str(run_dir),
               "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
               "--trainer.strategy", "ddp", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
               "--trainer.enable_model_summary", "false", "--save_every_n_steps", "1", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            cwd=TESTS.parent, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The exit status of a run started by :func:`start_on_two_processes` and the output of both ranks (read until
    the last of them ends)."""
    try:
        output, _ = process.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # both ranks: the session this test started
        output, _ = process.communicate()
        pytest.fail(f"a rank still runs after 150 s:\n{output[-3000:]}")
    return process.returncode, output


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("zoo fit: error:")]


def first_files_of_rank(photos: Path, rank: int, batch: int) -> list[Path]:
    """The training files of batch ``batch`` (from 0) of ``rank`` in the first epoch: Lightning shares the shuffled
    training set out with a ``DistributedSampler`` seeded with the run's seed (0)."""
    data = FolderDataModule(root=str(photos), image_size=28, num_workers=0)
    data.setup("fit")
    train: Any = data.datasets["train"]
    order = list(DistributedSampler(train, num_replicas=2, rank=rank, shuffle=True, seed=0))
    return [train.dataset.files[train.indices[i]] for i in order[batch * 4 : (batch + 1) * 4]]


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_every_rank_stops_in_one_line_after_a_full_disk_or_an_undecodable_image(tmp_path: Path) -> None:
    # the two runs, each on photos of its own, side by side: each spends seconds waiting (for its second rank to
    # start, for rank zero to stop), not computing
    photos = make_colour_folders(tmp_path / "PHOTOS", per_class=8)
    others = make_colour_folders(tmp_path / "OTHERS", per_class=8)

    # 1. best.ckpt cannot be written at the end of the epoch: rank zero's write fails while rank one waits for it.
    # Rank zero then takes 6 s to stop, longer than Lightning's launcher takes to kill every rank once one of those it
    # started has ended with a failure status: rank one must end after rank zero.
    probes = [{"class_path": "probes.FullDiskOn", "init_args": {"name": "best.ckpt"}},
              {"class_path": "probes.SlowToStop", "init_args": {"seconds": 6}}]  # fmt: skip
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": probes}}))
    full = tmp_path / "full"
    full_disk = start_on_two_processes(photos, full, "--config", str(tmp_path / "probe.yaml"))

    # 2. an image of rank one's second batch does not decode: rank zero, whose batch is whole, stops with it
    broken = first_files_of_rank(others, rank=1, batch=1)[0]
    assert broken not in [
        *first_files_of_rank(others, rank=0, batch=0),
        *first_files_of_rank(others, rank=0, batch=1),
    ]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    with Image.open(broken) as image:  # its header still reads: the listing lets it through
        assert image.size == (40, 30)
    undecodable = tmp_path / "undecodable"
    bad_image = start_on_two_processes(others, undecodable)

    # both waited for before anything is asserted: neither outlives the test
    (status, output), (image_status, image_output) = finish(full_disk), finish(bad_image)
    assert status == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert errors(output) == [
        f"zoo fit: error: no space left on device writing {full / 'best.ckpt'}; no best.ckpt was written yet: free "
        "some space, then resume from last.ckpt"
    ], output[-3000:]
    assert not list(full.glob("*.partial")) and not (full / "best.ckpt").exists()
    assert load(full / "last.ckpt")["global_step"] == STEPS  # written before the epoch's end, and whole

    assert image_status == 2, image_output[-3000:]
    assert "Traceback" not in image_output, image_output[-3000:]
    (line,) = errors(image_output)
    assert line.startswith(f"zoo fit: error: {broken} cannot be read as an image: "), line
    assert "(found while training: epoch 0, step 1)" in line, line
    assert load(undecodable / "last.ckpt")["global_step"] == 1
