"""Runs stopped mid-epoch by a signal or by a full disk lose nothing: ``last.ckpt`` is whole, the process ends with
one line and its documented status, and the run resumed from it ends with the weights of a run never interrupted."""

from __future__ import annotations

import csv
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.fabric.loggers.csv_logs
import pytest
import torch
import wandb
import yaml
from conftest import free_threads, make_idx_dataset

from zoo.cli import main
from zoo.cli.environment import quiet_defaults

TESTS = Path(__file__).resolve().parents[1]
RECIPE = "lenet5_fashionmnist"
#: 300 fabricated images, 100 held out: 200 to train on, 7 steps of 32 an epoch, 14 in all; last.ckpt every 3 steps
STEPS = 14


def fit_args(data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "--recipe", RECIPE,
        "--data.init_args.root", str(data),
        "--data.init_args.val_size", "100",
        "--data.init_args.batch_size", "32",
        "--trainer.default_root_dir", str(runs),
        "--trainer.accelerator", "cpu",
        "--trainer.max_epochs", "2",
        "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--save_every_n_steps", "3",
        *extra,
    ]  # fmt: skip


def with_callbacks(path: Path, *callbacks: dict[str, Any]) -> list[str]:
    """``--config FILE`` adding ``callbacks`` (the recipe's figure callbacks are left out)."""
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": list(callbacks)}}))
    return ["--config", str(path)]


def only_run(runs: Path) -> Path:
    (folder,) = (runs / RECIPE).iterdir()
    return folder


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got["global_step"] == expected["global_step"] == STEPS
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name


@pytest.fixture(scope="module", autouse=True)
def fixed_threads() -> Any:
    """One thread count for every run here: zoo's default follows the load on the cores, and weights summed with
    another count differ in their last bits, so runs compared bit for bit must not leave it to the load. The count
    is the one the load asks for when the first of them starts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", str(free_threads()))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=300, n_test=50)


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of the run never interrupted."""
    runs = tmp_path_factory.mktemp("straight")
    assert main("fit", fit_args(data, runs, "--trainer.callbacks", "[]")) == 0
    return only_run(runs) / "last.ckpt"


@pytest.mark.parametrize(
    ("name", "status", "signalled_at", "stopped_at", "files"),
    [
        # mid-epoch: stops after the step it arrived in
        ("SIGINT", 130, 4, 5, ["config.yaml", "last.ckpt"]),
        # in the epoch's last step: stops after validation and the epoch's checkpoint
        ("SIGTERM", 143, 6, 7, ["best.ckpt", "config.yaml", "last.ckpt", "metrics.csv"]),
    ],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_stops_after_the_step_and_the_resumed_run_matches_one_never_interrupted(
    name: str,
    status: int,
    signalled_at: int,
    stopped_at: int,
    files: list[str],
    data: Path,
    straight: Path,
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    probe = {"class_path": "probes.SignalAtStep",
             "init_args": {"step": signalled_at, "name": name, "marker": str(tmp_path / "signalled")}}  # fmt: skip
    stopped = subprocess.run(
        [sys.executable, "-m", "zoo.fit", *fit_args(data, runs, *with_callbacks(tmp_path / "probe.yaml", probe))],
        capture_output=True, text=True, timeout=300, cwd=TESTS.parent, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    assert stopped.returncode == status, stopped.stderr[-3000:]
    assert stopped.returncode == 128 + signal.Signals[name]
    assert "Traceback" not in stopped.stderr
    folder = only_run(runs)
    last = stopped.stderr.strip().splitlines()[-1]
    assert last == (
        f"zoo fit: stopped by {name} after step {stopped_at}; {folder / 'last.ckpt'} holds the run; "
        f"resume with --ckpt_path {folder / 'last.ckpt'}"
    )
    assert sorted(p.name for p in folder.iterdir()) == files  # no last.ckpt.partial, no metrics.json
    assert load(folder / "last.ckpt")["global_step"] == stopped_at and stopped_at % 3  # not a periodic save

    assert main("fit", ["--recipe", RECIPE, "--ckpt_path", str(folder / "last.ckpt")]) == 0
    assert_same_weights(load(folder / "last.ckpt"), load(straight))


def test_a_full_disk_keeps_the_previous_last_ckpt_and_stops_with_one_line(
    data: Path, straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    # the second write of last.ckpt (step 6) fails after writing part of the file, as on a full disk
    probe = {"class_path": "probes.FullDiskAt", "init_args": {"nth": 2, "marker": str(tmp_path / "full")}}
    assert main("fit", fit_args(data, runs, *with_callbacks(tmp_path / "probe.yaml", probe))) == 2
    folder = only_run(runs)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing {folder / 'last.ckpt'}; the previous last.ckpt (step 3) "
        "is intact: free some space, then resume from it"
    )
    assert not (folder / "last.ckpt.partial").exists()
    assert load(folder / "last.ckpt")["global_step"] == 3

    assert main("fit", ["--recipe", RECIPE, "--ckpt_path", str(folder / "last.ckpt")]) == 0
    assert_same_weights(load(folder / "last.ckpt"), load(straight))


def test_a_full_disk_while_best_ckpt_is_written_stops_with_one_line_and_no_partial_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    probe = {"class_path": "probes.FullDiskOn", "init_args": {"name": "best.ckpt"}}
    assert main("fit", fit_args(data, runs, *with_callbacks(tmp_path / "probe.yaml", probe))) == 2
    folder = only_run(runs)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing {folder / 'best.ckpt'}; no best.ckpt was written yet: free "
        "some space, then resume from last.ckpt"
    )
    assert not list(folder.glob("*.partial")) and not (folder / "best.ckpt").exists()
    assert load(folder / "last.ckpt")["global_step"] > 0  # what the run did is there to resume from


def test_a_real_full_file_system_keeps_the_previous_last_ckpt(
    data: Path, straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a tmpfs with room for one last.ckpt and a bit, not for the second one written beside it
    disk = tmp_path / "disk"
    disk.mkdir()
    size = straight.stat().st_size * 3 // 2 // 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        run = disk / "run"
        args = fit_args(data, tmp_path / "runs", "--trainer.callbacks", "[]", "--run_dir", str(run))
        assert main("fit", args) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == (
            f"zoo fit: error: no space left on device writing {run / 'last.ckpt'}; the previous last.ckpt (step 3) "
            "is intact: free some space, then resume from it"
        )
        assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "last.ckpt"]
        assert load(run / "last.ckpt")["global_step"] == 3
    finally:
        subprocess.run(["umount", str(disk)], check=True)
        shutil.rmtree(disk, ignore_errors=True)


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FillingFile:
    """A file open for writing on a disk that fills up: its first write stores half the data, then fails."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: Any) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise no_space()

    def __enter__(self) -> FillingFile:
        return self

    def __exit__(self, *exception: object) -> None:
        self.file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def fill_the_disk_writing(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """From now on, the files whose names are in the returned set fill the disk when written through ``Path.open``
    (which ``Path.write_text`` uses); the set starts empty."""
    names: set[str] = set()
    real_open = Path.open

    def open_or_fill(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        file = real_open(self, mode, *args, **kwargs)
        return FillingFile(file) if self.name in names and set(mode) & set("wax+") else file

    monkeypatch.setattr(Path, "open", open_or_fill)
    return names


def with_the_recipes_logger(args: list[str]) -> list[str]:
    """``args`` without their ``--trainer.logger false``."""
    at = args.index("--trainer.logger")
    return [*args[:at], *args[at + 2 :]]


def test_a_full_disk_while_metrics_csv_or_metrics_json_is_written_stops_with_one_line_and_loses_nothing(
    data: Path,
    straight: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = tmp_path / "runs"
    full = fill_the_disk_writing(monkeypatch)
    full.add("metrics.csv")  # epoch 0's row creates the file (beside it, then renamed); epoch 1's is appended
    assert main("fit", fit_args(data, runs, "--trainer.callbacks", "[]")) == 2
    folder = only_run(runs)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing {folder / 'metrics.csv'}; its earlier rows are intact: "
        "free some space, then resume from last.ckpt"
    )
    text = (folder / "metrics.csv").read_text()  # no half row
    assert text.endswith("\n") and [row["epoch"] for row in csv.DictReader(text.splitlines())] == ["0"]
    assert load(folder / "last.ckpt")["global_step"] == 12  # the last periodic save before the epoch's end
    assert not list(folder.glob("*.partial"))

    # resumed: the epoch is finished, then metrics.json, written once the best checkpoint is evaluated, fills the disk
    full.clear()
    full.add("metrics.json.partial")
    resume = ["--recipe", RECIPE, "--ckpt_path", str(folder / "last.ckpt")]
    assert main("fit", resume) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing {folder / 'metrics.json'}; no metrics.json was written; the "
        "checkpoints are intact: free some space, then resume from last.ckpt to evaluate it again"
    )
    assert not (folder / "metrics.json").exists() and not list(folder.glob("*.partial"))

    # resumed again with room: evaluated and written; each epoch's row once; the weights of a run never stopped
    full.clear()
    assert main("fit", resume) == 0
    assert (folder / "metrics.json").is_file()
    rows = list(csv.DictReader((folder / "metrics.csv").read_text().splitlines()))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert_same_weights(load(folder / "last.ckpt"), load(straight))


def test_a_full_disk_while_w_and_b_files_are_written_stops_with_one_line(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_copy = shutil.copyfile

    def copy_or_fill(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(target).name == "metrics.json" and "wandb" in Path(target).parts:  # the offline run's copy
            Path(target).write_bytes(Path(source).read_bytes()[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source), None, str(target))
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy_or_fill)
    runs = tmp_path / "runs"
    args = with_the_recipes_logger(fit_args(data, runs, "--trainer.callbacks", "[]"))
    assert main("fit", [*args, "--trainer.max_epochs", "1"]) == 2  # with the recipe's logger: W&B, offline
    folder = only_run(runs)
    (files,) = (folder / "wandb").glob("offline-run-*/files")
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing {files / 'metrics.json'}, W&B's copy; the run folder is "
        "intact: free some space, then resume from its last.ckpt to send it again"
    )
    assert (files / "config.yaml").is_file() and not (files / "metrics.json").exists()
    written = {p.name for p in folder.iterdir()}
    assert {"config.yaml", "last.ckpt", "best.ckpt", "metrics.csv", "metrics.json"} <= written
    assert wandb.run is None  # the W&B run was finished: a later run in this process starts its own


def test_a_full_disk_while_a_logger_writes_its_own_files_stops_with_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fill(self: Any) -> None:  # Lightning's CSV logger writing its metrics.csv: no file named in the error
        if self.metrics:
            raise no_space()

    monkeypatch.setattr(lightning.fabric.loggers.csv_logs._ExperimentWriter, "save", fill)
    runs = tmp_path / "runs"
    args = with_the_recipes_logger(fit_args(data, runs, "--trainer.callbacks", "[]"))
    assert main("fit", [*args, "--trainer.logger", "lightning.pytorch.loggers.CSVLogger"]) == 2
    folder = only_run(runs)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"zoo fit: error: no space left on device writing into {folder}; {folder / 'last.ckpt'} is intact: free some "
        "space, then resume from it"
    )
    assert load(folder / "last.ckpt")["global_step"] > 0


def test_a_log_file_on_a_full_disk_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    class FullLogFile(logging.Handler):  # as W&B's debug.log once its disk is full
        def emit(self, record: logging.LogRecord) -> None:
            try:
                raise no_space()
            except OSError:
                self.handleError(record)

    quiet_defaults()
    logger = logging.getLogger("zoo-tests-full-log")
    logger.addHandler(handler := FullLogFile())
    try:
        logger.error("lost")
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err == ""
