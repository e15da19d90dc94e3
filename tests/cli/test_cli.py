"""The command line, end to end: every recipe, run folders, W&B, DDP, resume after SIGKILL, and bad input."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import yaml
from conftest import (
    REPO,
    detection_recipe_args,
    finish,
    make_cifar10,
    make_cifar100,
    make_colour_folders,
    make_idx_dataset,
    make_voc_segmentation,
    require_fashion_mnist,
)
from PIL import Image

from zoo.cli import list_recipes, main
from zoo.data.readers.cifar import read_cifar_batch

RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
TESTS = Path(__file__).resolve().parents[1]


def data_root_for(recipe: str, tmp_path: Path) -> Path | None:
    """Fabricated files in the format the recipe's DataModule reads; None for data drawn in memory."""
    data_class = yaml.safe_load((REPO / "recipes" / f"{recipe}.yaml").read_text())["data"]["class_path"]
    if "ShapesDataModule" in data_class:
        return None
    if "VOCSegmentationDataModule" in data_class:
        return make_voc_segmentation(tmp_path / "voc")
    if "CIFAR100" in data_class:
        make_cifar100(tmp_path / "cifar100", train=200, test=40)
        return tmp_path / "cifar100"
    if "CIFAR10" in data_class:
        return make_cifar10(tmp_path / "cifar", per_batch=40)
    if "FolderDataModule" in data_class:  # your own photos: three classes of twelve, each its own colour
        return make_colour_folders(tmp_path / "PHOTOS")
    if "ImagesDataModule" in data_class:  # a folder of photos: 24 random PNGs
        folder = tmp_path / "photos"
        folder.mkdir()
        for index in range(24):
            Image.fromarray(np.full((20, 24, 3), index * 10, dtype=np.uint8)).save(folder / f"{index}.png")
        return folder
    return make_idx_dataset(tmp_path / "idx", n_train=300, n_test=100)


#: what else a recipe needs to run on fabricated data: style transfer has no VGG weights offline; the few-label
#: recipe draws fewer images per class from the small fabricated set; the big nets take smaller batches
SMALL_BATCHES = ["--data.init_args.batch_size", "8", "--data.init_args.eval_batch_size", "8"]
RECIPE_ARGS = {
    "transfer_fashionmnist": ["--data.init_args.train_per_class", "5"],
    # no ImageNet weights offline; small images; no worker processes
    "folder_resnet18": ["--model.init_args.weights", "null", "--data.init_args.image_size", "64",
                        "--data.init_args.num_workers", "0"],
    "folder_lenet5": ["--data.init_args.num_workers", "0"],
    **{name: SMALL_BATCHES for name in ["googlenet_cifar", "resnet110_cifar", "resnet18_cifar", "vgg16_cifar", "alexnet_cifar",
                                        "resnet56_cifar", "plain56_cifar", "resnet56_fashionmnist", "plain56_fashionmnist",
                                        "vgg11_fashionmnist"]},
    # no ImageNet weights offline; 64-pixel crops and whole images of 64, two images a batch, no worker processes
    "fcn_voc": ["--data.init_args.crop_size", "64", "--data.init_args.eval_size", "64", "--data.init_args.batch_size", "2",
                "--data.init_args.num_workers", "0", "--model.init_args.model_kwargs", '{"aux_loss": true}'],
    "style_fast": ["--model.init_args.loss_weights", "null", "--model.init_args.allow_random", "true",
                   "--model.init_args.style_size", "16", "--data.init_args.size", "16",
                   "--data.init_args.num_workers", "0"],
}  # fmt: skip


def run_zoo(
    command: str,
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: int = 300,
) -> subprocess.CompletedProcess:
    """Run ``python -m zoo.<command>`` as a user would, in a separate process, with no terminal to prompt on."""
    return finish(start_zoo(command, *args, env=env, unset=unset), timeout)


def start_zoo(
    command: str, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """Start what :func:`run_zoo` runs; :func:`finish` waits for it."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(TESTS), **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", f"zoo.{command}", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=full_env, cwd=TESTS.parent, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def run_here(command: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``zoo COMMAND`` in this process through its entry point, as :func:`run_zoo` does in another (several
    seconds quicker: torch and Lightning are imported already); the environment and torch's threads, which a
    command sets, are put back after it."""
    environment, threads = dict(os.environ), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(command, list(args))
    finally:
        os.environ.clear()
        os.environ.update(environment)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([command, *args], status, out.getvalue(), err.getvalue())


def small_fit_args(root: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "--recipe", "lenet5_fashionmnist",
        "--data.init_args.root", str(root),
        "--data.init_args.val_size", "100",
        "--data.init_args.batch_size", "32",
        "--trainer.default_root_dir", str(runs),
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        *extra,
    ]  # fmt: skip


def run_folder(stdout: str) -> Path:
    """The run folder named by the last line a fit prints."""
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("run folder: "), last
    return Path(last.removeprefix("run folder: "))


def test_list_names_every_recipe_with_its_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("fit", ["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == RECIPES == list(list_recipes())
    for line in lines:  # a test metric (test_acc, test_loss for style transfer), or why there is no figure
        recipe = yaml.safe_load((REPO / "recipes" / f"{line.split()[0]}.yaml").read_text())
        if "reference" in recipe:
            assert "reproduces test_" in line or "(no published figure)" in line, line
        else:  # the recipes for your own images compare with nothing published
            assert line.startswith("folder_") and line.endswith("no published reference"), line


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_runs_through_the_cli(
    recipe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if recipe.startswith("fasterrcnn_"):  # VOC and COCO-format files, and a detector small enough for seconds
        data = detection_recipe_args(recipe, tmp_path)
    else:
        root = data_root_for(recipe, tmp_path)
        val_size = [] if "voc" in recipe else ["--data.init_args.val_size", "20"]  # VOC has its own val split
        data = [] if root is None else ["--data.init_args.root", str(root), *val_size]
    args = ["--recipe", recipe, "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu", *data,
            "--trainer.default_root_dir", str(tmp_path / "runs"), *RECIPE_ARGS.get(recipe, [])]  # fmt: skip
    assert main("fit", args) == 0
    folder = run_folder(capsys.readouterr().out)
    metrics = json.loads((folder / "metrics.json").read_text())
    reference, test = (metrics["reference"] or {"metric": "test_acc"})["metric"], metrics["test"]
    reached = test[reference]
    if reference == "test_loss":  # style transfer
        assert math.isfinite(reached)
    elif reference.startswith("test_map"):  # detection: COCO-style AP is -1 where there is nothing to find
        assert -1.0 <= reached <= 1.0 and {"test_map", "test_map_50", "test_map_75", "test_mar_100"} <= set(
            test
        )
    else:  # accuracies, mean IoU
        assert 0.0 <= reached <= 1.0
    if reference == "test_miou":  # segmentation: pixel accuracy, and the IoU of each class by name
        background = test["test_iou/background"]
        assert 0.0 <= test["test_pixel_acc"] <= 1.0 and (math.isnan(background) or 0.0 <= background <= 1.0)
        assert "test_iou/circle" in test or "test_iou/aeroplane" in test
    assert (folder / "config.yaml").is_file()
    if reference in {"test_acc_iou50", "test_map", "test_map_50", "test_miou"}:  # boxes and masks drawn
        assert list((folder / "figures").glob("*test-overlays.png")), sorted((folder / "figures").iterdir())


def test_fit_leaves_a_complete_run_folder(idx_root: Path, tmp_path: Path) -> None:
    result = run_zoo("fit", *small_fit_args(idx_root, tmp_path / "runs", "--trainer.max_epochs", "2"))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = run_folder(result.stdout)
    assert folder.parent == tmp_path / "runs" / "lenet5_fashionmnist"
    assert {"config.yaml", "last.ckpt", "best.ckpt", "metrics.json"} <= {p.name for p in folder.iterdir()}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["val"]) >= {"val_acc", "val_loss"} and set(metrics["test"]) >= {
        "test_acc",
        "test_loss",
    }
    assert (
        metrics["epochs"] == 2 and metrics["test"]["test_acc"] > 0.5
    )  # the fabricated classes are learnable
    assert "test_acc/T-shirt/top" in metrics["test"]  # per-class accuracy, by class name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 2 and config["model"]["init_args"]["model"] == "lenet5"
    # one offline W&B run in the run folder, carrying the resolved config
    (wandb_run,) = (folder / "wandb").glob("offline-run-*")
    (records,) = wandb_run.glob("*.wandb")
    assert b"save_every_n_steps" in records.read_bytes()
    assert "wandb sync" in result.stdout

    # zoo.test evaluates a checkpoint; zoo.predict writes a CSV and refuses to overwrite it
    common = ["--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(idx_root),
              "--data.init_args.val_size", "100", "--ckpt_path", str(folder / "best.ckpt")]  # fmt: skip
    tested = run_here("test", "--ckpt_path", str(folder / "best.ckpt"))  # the run folder's config is used
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert json.loads(tested.stdout[tested.stdout.rindex("{") :])["test_acc"] == metrics["test"]["test_acc"]
    validated = subprocess.run(  # the new spelling of every command: python -m zoo COMMAND
        [sys.executable, "-m", "zoo", "validate", "--ckpt_path", str(folder / "best.ckpt")],
        capture_output=True, text=True, cwd=TESTS.parent, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert validated.returncode == 0, validated.stderr[-2000:]
    other_head = run_here(  # another model than it trained
        "test", *common, "--model.init_args.num_classes", "5"
    )
    assert_one_line_error(
        other_head, "do not fit the configured model", "(10, 84) in the checkpoint, (5, 84)"
    )
    assert (
        json.loads(validated.stdout[validated.stdout.rindex("{") :])["val_acc"] == metrics["val"]["val_acc"]
    )
    output = tmp_path / "predictions.csv"
    predicted = run_here("predict", *common, "--output", str(output))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = output.read_text().splitlines()
    assert rows[0].startswith("index,label,predicted") and len(rows) == 1 + 200
    again = run_here("predict", *common, "--output", str(output))
    assert again.returncode == 2 and "exists" in again.stderr and output.read_text().splitlines() == rows


def test_ddp_on_two_cpu_processes_shares_out_the_data(idx_root: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.yaml"
    shards = tmp_path / "shards"
    probe.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "probes.RecordShards", "init_args": {"out_dir": str(shards)}}]}}))  # fmt: skip
    args = small_fit_args(idx_root, tmp_path / "runs", "--config", str(probe), "--trainer.max_epochs", "2",
                          "--trainer.devices", "2", "--trainer.strategy", "ddp")  # fmt: skip
    result = run_zoo("fit", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = run_folder(result.stdout)
    assert json.loads((folder / "metrics.json").read_text())["devices"] == 2
    assert len(list((folder / "wandb").glob("offline-run-*"))) == 1
    assert len(list((tmp_path / "runs" / "lenet5_fashionmnist").iterdir())) == 1  # both ranks, one folder
    for epoch in (0, 1):
        rank0, rank1 = (json.loads((shards / f"rank{r}-epoch{epoch}.json").read_text()) for r in (0, 1))
        assert rank0["world_size"] == rank1["world_size"] == 2
        assert not set(rank0["indices"]) & set(rank1["indices"])
        assert len(rank0["indices"]) == len(rank1["indices"]) == rank0["train_size"] // 2
        assert rank0["batches"] == rank1["batches"] == -(-len(rank0["indices"]) // 32)
    first = json.loads((shards / "rank0-epoch0.json").read_text())["indices"]
    assert first != json.loads((shards / "rank0-epoch1.json").read_text())["indices"]  # reshuffled per epoch

    # zoo predict on two processes: each predicts its share, rank zero writes every row once, in order
    two = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    checkpoint = ["--ckpt_path", str(folder / "best.ckpt")]
    (tmp_path / "new").mkdir()  # 5 image files: 3 for one process, 2 for the other
    for index in range(5):
        Image.fromarray(skimage.data.camera()[index * 40 :][:100, :80]).save(
            tmp_path / "new" / f"{index}.png"
        )
    cases = {"split": [], "files": [str(tmp_path / "new")]}
    # both launches at once, beside the predictions of one process: the first process of each launch waits seconds
    # for its second to start; all are waited for before anything is asserted, so that none outlives the test
    started = {name: start_zoo("predict", *checkpoint, *paths, *two, "--output", str(tmp_path / f"{name}-2.csv"))
               for name, paths in cases.items()}  # fmt: skip
    one = ["--trainer.devices", "1", "--trainer.strategy", "auto"]  # not the run's own two processes
    alone = {name: run_here("predict", *checkpoint, *paths, *one, "--output", str(tmp_path / f"{name}-1.csv"))
             for name, paths in cases.items()}  # fmt: skip
    shared = {name: finish(process) for name, process in started.items()}
    for name, paths in cases.items():
        assert alone[name].returncode == 0, alone[name].stderr[-3000:]
        assert shared[name].returncode == 0, shared[name].stderr[-3000:]
        assert shared[name].stdout.count("predictions written to") == 1  # rank zero alone says so
        rows = (tmp_path / f"{name}-2.csv").read_text().splitlines()
        assert len(rows) == 1 + (5 if paths else 200)
        # the rows of one process, in its order: the same classes, probabilities equal but for the last digit
        # (one process sums its batches in another order)
        for row, alone_row in zip(rows, (tmp_path / f"{name}-1.csv").read_text().splitlines(), strict=True):
            fields, alone_fields = row.split(","), alone_row.split(",")
            assert [f for f in fields if not is_number(f)] == [f for f in alone_fields if not is_number(f)]
            numbers = [float(f) for f in fields if is_number(f)]
            assert numbers == pytest.approx([float(f) for f in alone_fields if is_number(f)], abs=1e-5)


def is_number(text: str) -> bool:
    """Whether a CSV field is a probability (a file name, class or index is compared as text)."""
    return "." in text and text.replace(".", "", 1).isdigit()


def test_resume_after_sigkill_mid_epoch_keeps_the_runs_config_and_matches_an_uninterrupted_run(
    idx_root: Path, tmp_path: Path
) -> None:
    # 200 training images, batch 32: 7 steps an epoch; last.ckpt every 3 steps; killed before step 11 (epoch 1).
    # The run is started with a batch size, label smoothing and padding other than the recipe's, and resumed
    # with none of them given: it must go on with its own.
    common = ["--trainer.max_epochs", "3", "--save_every_n_steps", "3", "--trainer.logger", "false",
              "--data.init_args.pad", "2", "--model.init_args.label_smoothing", "0.1"]  # fmt: skip
    make_idx_dataset(tmp_path / "small", n_train=300, n_test=50)
    straight = run_here("fit", *small_fit_args(tmp_path / "small", tmp_path / "a", *common))
    assert straight.returncode == 0, straight.stderr[-3000:]

    probes = tmp_path / "probes.yaml"
    options = tmp_path / "options.jsonl"
    probes.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "probes.KillAtStep", "init_args": {"step": 11, "marker": str(tmp_path / "killed")}},
        {"class_path": "probes.RecordOptions", "init_args": {"out_file": str(options)}}]}}))  # fmt: skip
    killed = run_zoo(
        "fit", *small_fit_args(tmp_path / "small", tmp_path / "b", *common, "--config", str(probes))
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    (folder,) = (tmp_path / "b" / "lenet5_fashionmnist").iterdir()
    assert not (folder / "metrics.json").exists()
    saved = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 9 and saved["global_step"] % 7 != 0  # mid-epoch

    resumed = run_here("fit", "--recipe", "lenet5_fashionmnist", "--trainer.default_root_dir", str(tmp_path / "b"),
                       "--ckpt_path", "last")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_folder(resumed.stdout) == folder

    first, second = (json.loads(line) for line in options.read_text().splitlines())
    assert (
        first
        == second
        == {"batch_size": 32, "val_size": 100, "pad": 2, "label_smoothing": 0.1, "max_epochs": 3}
    )
    expected = torch.load(run_folder(straight.stdout) / "last.ckpt", map_location="cpu", weights_only=True)
    got = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert got["hyper_parameters"]["label_smoothing"] == 0.1
    assert got["global_step"] == expected["global_step"] == 21
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name


def test_resume_refuses_a_conflicting_override_unless_asked(idx_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = run_here(
        "fit", *small_fit_args(idx_root, runs, "--trainer.max_epochs", "1", "--trainer.logger", "false")
    )
    assert first.returncode == 0, first.stderr[-3000:]
    folder = run_folder(first.stdout)
    config = (folder / "config.yaml").read_text()
    resume = ["--recipe", "lenet5_fashionmnist", "--trainer.default_root_dir", str(runs)]

    # a RUN/last.ckpt resumed with another batch size: refused, naming the key and both values
    refused = run_here("fit", *resume, "--ckpt_path", str(folder / "last.ckpt"), "--data.batch_size", "16")
    assert_one_line_error(refused, "data.batch_size is 32 in the run, 16 here", "--resume_with_changes")
    # `last` with an override no run has: none matches, and the newest run's value is named
    other = run_here(
        "fit", *resume, "--ckpt_path", "last", "--data.init_args.root", str(tmp_path / "elsewhere")
    )
    assert_one_line_error(other, "none of the 1 runs", f"data.init_args.root is '{idx_root}' in the run")
    assert (folder / "config.yaml").read_text() == config and not (folder / "config_history.yaml").exists()

    # asked for: trained on with the change, printed, recorded in the history and in config.yaml
    changed = run_here(
        "fit", *resume, "--ckpt_path", "last", "--trainer.max_epochs", "2", "--resume_with_changes"
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert run_folder(changed.stdout) == folder
    assert "resuming with a change: trainer.max_epochs 1 -> 2" in changed.stdout
    (entry,) = yaml.safe_load((folder / "config_history.yaml").read_text())
    assert entry["changes"] == {"trainer.max_epochs": {"was": 1, "now": 2}}
    assert yaml.safe_load((folder / "config.yaml").read_text())["trainer"]["max_epochs"] == 2
    assert json.loads((folder / "metrics.json").read_text())["epochs"] == 2


def test_last_picks_the_newest_run_of_the_data_asked_for(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    roots = [make_idx_dataset(tmp_path / name, n_train=150, n_test=20) for name in ("first", "second")]
    folders = []
    for root in roots:
        done = run_here(
            "fit", *small_fit_args(root, runs, "--trainer.max_epochs", "1", "--trainer.logger", "false")
        )
        assert done.returncode == 0, done.stderr[-3000:]
        folders.append(run_folder(done.stdout))
    # the older run, named by its data: resumed (a finished run trains no further and is evaluated again)
    again = run_here("fit", *small_fit_args(roots[0], runs, "--trainer.max_epochs", "1", "--ckpt_path", "last",
                                           "--trainer.logger", "false"))  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert run_folder(again.stdout) == folders[0]
    assert len(list((runs / "lenet5_fashionmnist").iterdir())) == 2  # no new run folder


@pytest.mark.real_data
def test_lenet5_one_epoch_on_real_fashion_mnist(tmp_path: Path) -> None:
    require_fashion_mnist()
    result = run_here("fit", "--recipe", "lenet5_fashionmnist", "--trainer.max_epochs", "1",
                      "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_folder(result.stdout) / "metrics.json").read_text())
    assert metrics["test"]["test_acc"] >= 0.85, metrics["test"]


# ---- bad input: one line on stderr, exit status 2, nothing overwritten --------------------------------------


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo ") and ": error: " in last, last
    for fragment in fragments:
        assert fragment in last, last


def bad_idx_root(tmp_path: Path, damage: str) -> Path:
    root = make_idx_dataset(tmp_path / damage, n_train=100, n_test=20)
    target = root / "train-images-idx3-ubyte.gz"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    else:  # wrong magic: the header claims signed ints instead of unsigned bytes
        raw = bytearray(gzip.decompress(target.read_bytes()))
        raw[2] = 0x0C
        target.write_bytes(gzip.compress(bytes(raw)))
    return root


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--recipe", "lenet5_fashionmnst"], ["unknown recipe", "lenet5_fashionmnist"]),
        (
            ["--recipe", "lenet5_fashionmnist", "--model.init_args.model", "lenet"],
            ["unknown model 'lenet'", "lenet5"],
        ),
        (["--recipe", "lenet5_fashionmnist", "--trainer.max_epoch", "3"], ["max_epoch"]),
        (["--recipe", "lenet5_fashionmnist", "--trainer.max_epochs", "three"], ["max_epochs", "three"]),
        (
            ["--recipe", "mlp_mnist", "--data.init_args.root", "{empty}"],
            ["mnist not found", "--data.download"],
        ),
        (
            [
                "--recipe",
                "lenet5_fashionmnist",
                "--data.init_args.root",
                "{idx}",
                "--data.init_args.val_size",
                "20",
                "--model.init_args.num_classes",
                "5",
            ],
            ["num_classes=5", "10 classes"],
        ),
        (
            ["--recipe", "lenet5_fashionmnist", "--data.init_args.root", "{truncated}"],
            ["train-images", "truncated"],
        ),
        (["--recipe", "lenet5_fashionmnist", "--data.init_args.root", "{magic}"], ["not an IDX file"]),
        (
            ["--recipe", "vgg16_cifar", "--data.init_args.root", "{corrupt_cifar}"],
            ["data_batch_3", "CIFAR pickle"],
        ),
        (["--recipe", "{bad_yaml}"], ["not valid YAML", "line 4"]),
    ],
    ids=[
        "recipe",
        "model",
        "key",
        "type",
        "missing-data",
        "num-classes",
        "truncated-idx",
        "idx-magic",
        "corrupt-cifar",
        "yaml",
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cifar = make_cifar10(tmp_path / "c", per_batch=10) / "cifar-10-batches-py" / "data_batch_3"
    cifar.write_bytes(cifar.read_bytes()[:200])
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  class_path: zoo.tasks.ClassificationTask\n  init_args: [unclosed\n")
    places = {
        "{empty}": tmp_path / "empty",
        "{idx}": make_idx_dataset(tmp_path / "ok", n_train=100, n_test=20),
        "{truncated}": bad_idx_root(tmp_path, "truncated"),
        "{magic}": bad_idx_root(tmp_path, "magic"),
        "{corrupt_cifar}": tmp_path / "c",
        "{bad_yaml}": bad_yaml,
    }
    # as a user runs it, in a process of its own, for an answer found before anything is built (the recipe) and one
    # found in the data (CIFAR); the others through the same entry point in this process
    separate = "lenet5_fashionmnst" in args or "{corrupt_cifar}" in args
    args = [str(places.get(a, a)) for a in args]
    args += ["--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.accelerator", "cpu"]
    result = run_zoo("fit", *args) if separate else run_here("fit", *args)
    assert_one_line_error(result, *fragments)


def test_bad_checkpoints_are_refused(idx_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, evil)
    common = ["--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(idx_root)]
    for path, fragment in ((evil, "cannot be loaded safely"), (tmp_path / "nope.ckpt", "does not exist")):
        assert_one_line_error(run_here("test", *common, "--ckpt_path", str(path)), fragment)
    assert not marker.exists()
    assert_one_line_error(run_here("test", *common), "needs --ckpt_path")
    assert_one_line_error(run_here("fit"), "--recipe NAME")
    assert_one_line_error(run_here("fit", *common, "--ckpt_path", "last", "--trainer.default_root_dir",
                                  str(tmp_path / "none")), "no run with a last.ckpt")  # fmt: skip


def test_an_existing_run_folder_is_not_overwritten(idx_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"precious")
    result = run_here("fit", *small_fit_args(idx_root, tmp_path / "runs", "--run_dir", str(folder)))
    assert_one_line_error(result, "already holds a run")
    assert (folder / "last.ckpt").read_bytes() == b"precious"


def test_nan_loss_stops_the_run_naming_the_step(idx_root: Path, tmp_path: Path) -> None:
    result = run_here("fit", *small_fit_args(idx_root, tmp_path / "runs", "--optimizer.init_args.lr", "1e12",
                                            "--trainer.logger", "false"))  # fmt: skip
    # found at a step check (every log_every_n_steps, 50 here), which names the exact step and the steps it read
    assert_one_line_error(result, "loss became", "at step", "checked between step 0 and step")


def test_pickled_cifar_module_is_not_needed_to_read_the_data(tmp_path: Path) -> None:
    # the fabricated CIFAR pickles the recipes run on hold only builtins and numpy arrays, as the originals do:
    # they name no module of zoo or of these tests, and zoo's reader, which builds numpy arrays and nothing else,
    # reads every one of them back as a plain pickle.load does
    batches = make_cifar10(tmp_path, per_batch=4) / "cifar-10-batches-py"
    make_cifar100(tmp_path, train=4, test=2)
    files = [(path, "labels") for path in sorted(batches.iterdir())]
    files += [(tmp_path / "cifar-100-python" / name, "fine_labels") for name in ("train", "test")]
    assert len(files) == 8
    for path, label_key in files:
        raw = path.read_bytes()
        opcodes = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
        assert "STACK_GLOBAL" not in {name for name, _ in opcodes}, path  # protocol 2: globals named inline
        modules = {arg.split()[0] for name, arg in opcodes if name == "GLOBAL"}
        assert modules and all(m == "_codecs" or m.split(".")[0] == "numpy" for m in modules), (path, modules)
        expected = pickle.loads(raw, encoding="latin1")
        images, labels = read_cifar_batch(path, label_key)
        assert np.array_equal(images.numpy(), np.asarray(expected["data"]).reshape(-1, 3, 32, 32)), path
        assert labels.tolist() == list(expected[label_key]), path


def test_a_torchrun_rank_without_run_dir_is_told_to_name_one(
    idx_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():  # what torchrun sets
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        "torch.distributed.init_process_group", lambda *a, **k: pytest.fail("waits for rank 0")
    )
    result = run_here("fit", *small_fit_args(idx_root, tmp_path / "runs"))
    assert_one_line_error(result, "--run_dir")
    assert not (tmp_path / "runs").exists()


def test_wandb_goes_offline_without_a_login_and_never_prompts(idx_root: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"  # no ~/.netrc, so no W&B login
    home.mkdir()
    args = small_fit_args(idx_root, tmp_path / "runs", "--trainer.max_epochs", "1")
    result = run_zoo(
        "fit", *args, env={"HOME": str(home)}, unset=("WANDB_MODE", "WANDB_API_KEY"), timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = run_folder(result.stdout)
    assert len(list((folder / "wandb").glob("offline-run-*"))) == 1
    assert f"wandb sync {folder / 'wandb'}" in result.stdout
