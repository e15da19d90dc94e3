"""Every run's history in its folder, whatever the logger: the loggers' files, ``metrics.csv``, the learning rate,
the files sent to W&B, and a model summary of the network alone."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import REPO

from zoo.callbacks import EpochMetrics
from zoo.cli import main

RECIPE = "lenet5_fashionmnist"


def fit(
    idx_root: Path, runs: Path, capsys: pytest.CaptureFixture[str], *extra: str, recipe: str = RECIPE
) -> tuple[Path, str]:
    """Train LeNet-5 on the fabricated data (five steps an epoch); the run folder and what the fit printed."""
    args = [
        "--recipe", recipe,
        "--data.init_args.root", str(idx_root),
        "--data.init_args.val_size", "100",
        "--data.init_args.batch_size", "100",
        "--trainer.default_root_dir", str(runs),
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.callbacks", "[]",  # no figures: they are not what these tests look at
        *extra,
    ]  # fmt: skip
    assert main("fit", args) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("run folder: "), out[-2000:]
    return Path(last.removeprefix("run folder: ")), out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def only_the_run_folder(runs: Path, folder: Path) -> None:
    """Nothing was written beside the run folder (Lightning's default is ``<default_root_dir>/lightning_logs``)."""
    assert [p.name for p in runs.iterdir()] == [RECIPE] and [p.name for p in (runs / RECIPE).iterdir()] == [
        folder.name
    ]


def test_csv_logger_writes_into_the_run_folder_with_the_learning_rate_of_every_step(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    folder, _ = fit(
        idx_root, runs, capsys, "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1",
    )  # fmt: skip
    only_the_run_folder(runs, folder)
    logged = read_csv(folder / "lightning_logs" / "version_0" / "metrics.csv")
    rates = {int(row["step"]): float(row["lr-Adam"]) for row in logged if row.get("lr-Adam")}
    assert sorted(rates) == list(range(10))  # every step of two epochs of five
    assert len(set(rates.values())) == 10  # the cosine schedule moves every step

    # metrics.csv: one row an epoch, holding what the task logged for that epoch, read without pandas
    rows = read_csv(folder / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"] and [row["step"] for row in rows] == ["5", "10"]
    assert {"train_loss_epoch", "train_acc", "val_loss", "val_acc", "lr"} <= set(rows[0])
    assert not [name for name in rows[0] if name.endswith("_step")]
    for row in rows:
        epoch = int(row["epoch"])
        (lightning_row,) = [r for r in logged if r.get("epoch") == str(epoch) and r.get("val_acc")]
        (train_row,) = [r for r in logged if r.get("epoch") == str(epoch) and r.get("train_loss_epoch")]
        assert float(row["val_acc"]) == float(lightning_row["val_acc"])
        assert float(row["val_loss"]) == float(lightning_row["val_loss"])
        assert float(row["train_loss_epoch"]) == float(train_row["train_loss_epoch"])
        assert float(row["lr"]) == rates[int(row["step"]) - 1]  # the rate of the epoch's last step


@pytest.mark.parametrize("logger", ["lightning.pytorch.loggers.TensorBoardLogger", "true"])
def test_tensorboard_writes_into_the_run_folder(
    logger: str, idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    folder, _ = fit(idx_root, runs, capsys, "--trainer.logger", logger, "--trainer.max_epochs", "1",
                    "--trainer.log_every_n_steps", "1")  # fmt: skip
    only_the_run_folder(runs, folder)
    # the fit's event file, then one for each evaluation of the best checkpoint
    events = sorted((folder / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))
    recorded = b"".join(file.read_bytes() for file in events)
    assert b"lr-Adam" in recorded and b"val_acc" in recorded
    assert (folder / "metrics.csv").is_file()


def test_a_recipes_csv_logger_needs_no_save_dir(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = yaml.safe_load((REPO / "recipes" / f"{RECIPE}.yaml").read_text())
    recipe["trainer"]["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger"}
    (tmp_path / f"{RECIPE}.yaml").write_text(yaml.safe_dump(recipe))
    runs = tmp_path / "runs"
    folder, _ = fit(idx_root, runs, capsys, "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1",
                    recipe=str(tmp_path / f"{RECIPE}.yaml"))  # fmt: skip
    only_the_run_folder(runs, folder)
    logged = read_csv(folder / "lightning_logs" / "version_0" / "metrics.csv")
    assert len([row for row in logged if row.get("lr-Adam")]) == 5


def test_without_a_logger_metrics_csv_still_holds_every_epoch_and_the_learning_rate(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    folder, _ = fit(idx_root, runs, capsys, "--trainer.logger", "false", "--trainer.max_epochs", "2")
    only_the_run_folder(runs, folder)
    rows = read_csv(folder / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"]
    for row in rows:
        values = {name: float(value) for name, value in row.items()}
        assert all(math.isfinite(v) for v in values.values()) and 0 < values["lr"] <= 0.004
        assert 0.0 <= values["val_acc"] <= 1.0
    # the best checkpoint is the epoch of the best val_acc, and its evaluation gives that value again
    best = max(float(row["val_acc"]) for row in rows)
    reported = json.loads((folder / "metrics.json").read_text())["val"]["val_acc"]
    assert reported == pytest.approx(best, abs=1e-6)


def test_a_resumed_run_appends_to_metrics_csv_without_repeating_an_epoch(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    folder, _ = fit(idx_root, runs, capsys, "--trainer.logger", "false", "--trainer.max_epochs", "1")
    first = read_csv(folder / "metrics.csv")
    with (folder / "metrics.csv").open("a") as file:  # a row written just before the run was killed
        file.write("1,7," + ",".join("0.5" for _ in range(len(first[0]) - 2)) + "\n")
    resumed, _ = fit(idx_root, runs, capsys, "--trainer.logger", "false", "--trainer.max_epochs", "2",
                     "--ckpt_path", "last", "--resume_with_changes")  # fmt: skip
    assert resumed == folder
    rows = read_csv(folder / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"] and rows[0] == first[0]
    assert rows[1]["step"] == "10" and rows[1]["val_acc"] != "0.5"


def test_metrics_csv_widens_its_header_and_leaves_stale_values_out(tmp_path: Path) -> None:
    callback = EpochMetrics(tmp_path)
    loss, acc = torch.tensor(0.5), torch.tensor(0.25)

    def epoch_end(epoch: int, metrics: dict[str, torch.Tensor], writer: EpochMetrics = callback) -> None:
        trainer = SimpleNamespace(is_global_zero=True, world_size=1, current_epoch=epoch, global_step=5 * (epoch + 1),
                                  callback_metrics=metrics, optimizers=[])  # fmt: skip
        writer.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]

    epoch_end(0, {"train_loss_epoch": loss, "train_loss_step": torch.tensor(9.0)})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,step,train_loss_epoch", "0,5,0.5"]
    # validation from the second epoch on: the header widens, the first row leaves val_acc empty
    epoch_end(1, {"train_loss_epoch": torch.tensor(0.4), "val_acc": acc})
    # no validation in the third epoch: Lightning still holds the second epoch's val_acc, which is not repeated
    epoch_end(2, {"train_loss_epoch": torch.tensor(0.3), "val_acc": acc, "per_class": torch.ones(3)})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,step,train_loss_epoch,val_acc",
        "0,5,0.5,",
        "1,10,0.4000000059604645,0.25",
        "2,15,0.30000001192092896,",
    ]
    # a run resumed from the end of the second epoch rewrites the third row, once
    resumed = EpochMetrics(tmp_path)
    epoch_end(2, {"train_loss_epoch": torch.tensor(0.2), "val_acc": torch.tensor(0.75)}, resumed)
    rows = read_csv(tmp_path / "metrics.csv")
    assert [(r["epoch"], r["val_acc"]) for r in rows] == [("0", ""), ("1", "0.25"), ("2", "0.75")]
    # only rank zero writes
    other_rank = EpochMetrics(tmp_path / "elsewhere")
    other_rank.on_train_epoch_end(SimpleNamespace(is_global_zero=False, world_size=1), None)  # type: ignore[arg-type]
    assert not (tmp_path / "elsewhere").exists()


def wandb_records(offline: Path, *expected: bytes) -> bytes:
    """An offline W&B run's records, once they hold ``expected``: W&B's own process writes them out after ``finish``
    has returned."""
    deadline = time.monotonic() + 30
    while True:
        (records,) = offline.glob("*.wandb")
        recorded = records.read_bytes()
        if all(part in recorded for part in expected) or time.monotonic() > deadline:
            return recorded
        time.sleep(0.2)


def test_wandb_gets_the_config_and_results_even_offline(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the recipe's WandbLogger, offline (tests/conftest.py)
    folder, _ = fit(
        idx_root, tmp_path / "runs", capsys, "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1"
    )
    (offline,) = (folder / "wandb").glob("offline-run-*")
    for name in ("config.yaml", "metrics.json"):
        copy = offline / "files" / name
        # a file of its own, not wandb's link to the run folder: the offline run can be synced from anywhere
        assert copy.is_file() and not copy.is_symlink(), sorted((offline / "files").iterdir())
        assert copy.read_bytes() == (folder / name).read_bytes()
    # what `wandb sync` uploads: the files, and the learning rate of every step
    recorded = wandb_records(offline, b"metrics.json", b"config.yaml", b"lr-Adam")
    assert b"metrics.json" in recorded and b"config.yaml" in recorded and recorded.count(b"lr-Adam") >= 5
    assert (folder / "metrics.csv").is_file()


def test_a_run_without_a_validation_split_keeps_its_last_weights_as_best_and_warns_of_nothing(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    # as fast_fashionmnist trains: a fixed length, every training image trained on, nothing held out
    folder, _ = fit(idx_root, tmp_path / "runs", capsys, "--data.init_args.val_size", "0",
                    "--trainer.max_epochs", "2", "--trainer.logger", "false")  # fmt: skip
    lightning = [str(w.message) for w in recwarn if "lightning" in w.filename]
    assert not [m for m in lightning if "monitored key" in m or "Total length" in m], lightning
    best = torch.load(folder / "best.ckpt", weights_only=True, map_location="cpu")
    last = torch.load(folder / "last.ckpt", weights_only=True, map_location="cpu")
    assert best["epoch"] == last["epoch"] == 1 and best["global_step"] == last["global_step"] > 0
    assert best["state_dict"].keys() == last["state_dict"].keys()
    assert all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    result = json.loads((folder / "metrics.json").read_text())
    assert result["best_checkpoint"] == str(folder / "best.ckpt") and result["val"] == {}
    assert "test_acc" in result["test"]


def test_wandb_disabled_is_no_logger_to_send_files_to(idx_root: Path, tmp_path: Path) -> None:
    # in a process of its own: W&B reads WANDB_MODE once a process, and the other tests run offline
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "zoo", "fit", "--recipe", "lenet5_fashionmnist", "--data.root", str(idx_root),
         "--data.val_size", "100", "--data.batch_size", "32", "--trainer.default_root_dir", str(runs),
         "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "5", "--trainer.enable_progress_bar", "false"],
        capture_output=True, text=True, cwd=REPO, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (runs / "lenet5_fashionmnist").iterdir()
    assert (folder / "metrics.csv").is_file() and not (folder / "wandb").exists()


def test_the_model_summary_lists_the_network_and_no_metrics(
    idx_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # Rich's width: the types in full, not cut to "Metr…"
    _, out = fit(idx_root, tmp_path / "runs", capsys, "--trainer.logger", "false", "--trainer.fast_dev_run", "true",
                 "--trainer.enable_model_summary", "true")  # fmt: skip
    table = out[out.index("┏") : out.index("Trainable params")]
    cells = [[c.strip() for c in line.strip().strip("│").split("│")] for line in table.splitlines()]
    names = [row[1] for row in cells if row[0].isdigit()]
    assert "net" in names and "net.features" in names and "net.classifier" in names, table
    assert "Metric" not in table, table  # MetricCollection, without NetworkSummary
    assert not [name for name in names if "metrics" in name or "accuracy" in name], names
