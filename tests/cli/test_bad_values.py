"""Every value a user gives is answered: one line, exit status 2, no traceback, and no run folder left behind by a
run that never trained. docs/reliability.md tables these cases.

Each case runs the real entry point (``zoo.cli.main``) in this process, on fabricated files, with the recipe's own
values and one or two changed; most stop before anything is built, the rest when the data is read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, make_coco_detection, make_colour_folders, make_idx_dataset
from PIL import Image

from zoo.cli import main

NO_GPU = not torch.cuda.is_available()
LENET = [
    "--recipe",
    "lenet5_fashionmnist",
    "--data.init_args.root",
    "{idx}",
    "--data.init_args.val_size",
    "20",
]
FOLDER = ["--recipe", "folder_lenet5", "--data.init_args.num_workers", "0", "--data.init_args.val_size", "3"]
STYLE = ["--recipe", "style_fast", "--model.init_args.loss_weights", "null", "--model.init_args.allow_random", "true",
         "--model.init_args.style_size", "16", "--data.init_args.size", "16", "--data.init_args.num_workers", "0"]  # fmt: skip
SGD = ["--optimizer", "torch.optim.SGD", "--optimizer.init_args.lr", "0.1"]
#: the recipes that start from ImageNet weights start from random ones here, offline
NO_DOWNLOAD = ["--model.init_args.model_kwargs", "null"]

#: (id, command, arguments, fragments of the one line): {name} is a fabricated file or folder (see ``places``)
CASES: list[tuple[str, str, list[str], list[str]]] = [
    # ---- optimiser ----
    ("lr-negative", "fit", [*LENET, "--optimizer.lr", "-1"], ["--optimizer.init_args.lr must be a number above 0, got -1.0"]),
    ("lr-zero", "fit", [*LENET, "--optimizer.init_args.lr", "0"], ["--optimizer.init_args.lr", "above 0", "got 0.0"]),
    ("lr-nan", "fit", [*LENET, "--optimizer.init_args.lr", "nan"], ["--optimizer.init_args.lr must be a number, got nan"]),
    ("momentum-not-adam", "fit", [*LENET, "--optimizer.init_args.momentum", "2"],
     ["--optimizer.init_args.momentum", "torch.optim.Adam takes no option 'momentum'"]),
    ("momentum-2", "fit", [*LENET, *SGD, "--optimizer.init_args.momentum", "2"],
     ["--optimizer.init_args.momentum must be a number from 0 to 1 (1 excluded), got 2.0"]),
    ("weight-decay-text", "fit", [*LENET, "--optimizer.weight_decay", "abc"],
     ["--optimizer.init_args.weight_decay must be a number, got abc"]),
    ("weight-decay-negative", "fit", [*LENET, "--optimizer.init_args.weight_decay", "-1"],
     ["--optimizer.init_args.weight_decay must be a number of at least 0"]),
    ("betas", "fit", [*LENET, "--optimizer.init_args.betas", "[2, 0.9]"], ["each value of --optimizer.init_args.betas"]),
    ("eps-negative", "fit", [*LENET, "--optimizer.init_args.eps", "-1"], ["--optimizer.init_args.eps"]),
    ("nesterov-without-momentum", "fit", [*LENET, *SGD, "--optimizer.init_args.nesterov", "true"],
     ["--optimizer.init_args.nesterov needs a momentum above 0"]),
    ("rmsprop-alpha", "fit", [*LENET, "--optimizer", "torch.optim.RMSprop", "--optimizer.init_args.alpha", "1.5"],
     ["--optimizer.init_args.alpha must be a number from 0 to 1"]),
    ("optimizer-misspelled", "fit", [*LENET, "--optimizer", "torch.optim.Adamm"], ["did you mean torch.optim.Adam?"]),
    ("optimizer-option-misspelled", "fit", [*LENET, "--optimizer.init_args.lrr", "0.1"], ["'lrr'", "did you mean lr?"]),
    ("optimizer-not-an-optimizer", "fit", [*LENET, "--optimizer", "zoo.data.MNISTDataModule"],
     ["is not a subclass of Optimizer"]),
    # ---- learning-rate schedule ----
    ("warmup-2", "fit", [*LENET, "--lr_scheduler.init_args.warmup", "2"],
     ["--lr_scheduler.init_args.warmup must be a number from 0 to 1 (1 excluded), got 2.0"]),
    ("final-fraction", "fit", [*LENET, "--lr_scheduler.init_args.final_fraction", "-1"],
     ["--lr_scheduler.init_args.final_fraction"]),
    ("milestones-unordered", "fit",
     [*LENET, "--lr_scheduler", "zoo.tasks.WarmupMultiStep", "--lr_scheduler.init_args.milestones", "[0.75, 0.5]"],
     ["zoo.tasks.WarmupMultiStep refuses its options", "milestones are increasing"]),
    ("cosine-t-max-0", "fit",
     [*LENET, "--lr_scheduler", "torch.optim.lr_scheduler.CosineAnnealingLR", "--lr_scheduler.init_args.T_max", "0"],
     ["--lr_scheduler.init_args.T_max must be a whole number of at least 1"]),
    ("step-size-0", "fit",
     [*LENET, "--lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.init_args.step_size", "0"],
     ["--lr_scheduler.init_args.step_size"]),
    ("gamma-0", "fit", [*LENET, "--lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.init_args.step_size",
                        "2", "--lr_scheduler.init_args.gamma", "0"], ["--lr_scheduler.init_args.gamma must be a number above 0"]),
    ("schedule-required-option", "fit", [*LENET, "--lr_scheduler", "torch.optim.lr_scheduler.OneCycleLR"],
     ["--lr_scheduler.init_args.max_lr is required"]),
    ("schedule-option-misspelled", "fit", [*LENET, "--lr_scheduler.init_args.warmupp", "0.1"], ["did you mean warmup?"]),
    # ---- trainer: counts, limits, fractions ----
    ("max-epochs-negative", "fit", [*LENET, "--trainer.max_epochs", "-5"], ["--trainer.max_epochs", "-1 for no limit", "got -5"]),
    ("max-epochs-text", "fit", [*LENET, "--trainer.max_epochs", "three"], ["--trainer.max_epochs must be a whole number, got three"]),
    ("max-epochs-fraction", "fit", [*LENET, "--trainer.max_epochs", "1.5"], ["--trainer.max_epochs must be a whole number, got 1.5"]),
    ("min-above-max", "fit", [*LENET, "--trainer.min_epochs", "5", "--trainer.max_epochs", "2"],
     ["--trainer.min_epochs (5) must not exceed --trainer.max_epochs (2)"]),
    ("max-steps", "fit", [*LENET, "--trainer.max_steps", "-5"], ["--trainer.max_steps"]),
    ("limit-train-above-1", "fit", [*LENET, "--trainer.limit_train_batches", "1.5"], ["--trainer.limit_train_batches", "got 1.5"]),
    ("limit-val-negative", "fit", [*LENET, "--trainer.limit_val_batches", "-1"], ["--trainer.limit_val_batches", "got -1"]),
    ("overfit-negative", "fit", [*LENET, "--trainer.overfit_batches", "-1"], ["--trainer.overfit_batches"]),
    ("val-check-interval-0", "fit", [*LENET, "--trainer.val_check_interval", "0"], ["--trainer.val_check_interval", "got 0"]),
    ("check-val-every-0", "fit", [*LENET, "--trainer.check_val_every_n_epoch", "0"], ["--trainer.check_val_every_n_epoch"]),
    ("sanity-steps", "fit", [*LENET, "--trainer.num_sanity_val_steps", "-5"], ["--trainer.num_sanity_val_steps"]),
    ("log-every-negative", "fit", [*LENET, "--trainer.log_every_n_steps", "-1"], ["--trainer.log_every_n_steps"]),
    ("accumulate-0", "fit", [*LENET, "--trainer.accumulate_grad_batches", "0"], ["--trainer.accumulate_grad_batches"]),
    ("clip-negative", "fit", [*LENET, "--trainer.gradient_clip_val", "-1"], ["--trainer.gradient_clip_val"]),
    ("clip-algorithm", "fit", [*LENET, "--trainer.gradient_clip_algorithm", "foo"], ["--trainer.gradient_clip_algorithm"]),
    ("devices-0", "fit", [*LENET, "--trainer.devices", "0"], ["--trainer.devices"]),
    ("num-nodes-0", "fit", [*LENET, "--trainer.num_nodes", "0"], ["--trainer.num_nodes must be a whole number of at least 1"]),
    ("reload-negative", "fit", [*LENET, "--trainer.reload_dataloaders_every_n_epochs", "-1"],
     ["--trainer.reload_dataloaders_every_n_epochs"]),
    ("fast-dev-run-negative", "fit", [*LENET, "--trainer.fast_dev_run", "-1"], ["--trainer.fast_dev_run"]),
    ("max-time", "fit", [*LENET, "--trainer.max_time", "abc"], ["not a valid duration", "DD:HH:MM:SS"]),
    ("profiler", "fit", [*LENET, "--trainer.profiler", "foo"], ["profiler", "simple"]),
    ("deterministic", "fit", [*LENET, "--trainer.deterministic", "foo"], ["--trainer.deterministic", "got foo"]),
    ("trainer-key-misspelled", "fit", [*LENET, "--trainer.max_epoch", "3"], ["did you mean --trainer.max_epochs?"]),
    ("section-misspelled", "fit", [*LENET, "--trainr.max_epochs", "3"], ["did you mean --trainer.max_epochs?"]),
    ("callback-misspelled", "fit", [*LENET, "--trainer.callbacks+", "zoo.callbacks.Filterz"],
     ["did you mean zoo.callbacks.Filters?"]),
    ("callback-needs-option", "fit", [*LENET, "--trainer.callbacks+", "lightning.pytorch.callbacks.EarlyStopping"],
     ["EarlyStopping needs monitor"]),
    ("callback-option-range", "fit", [*LENET, "--config", "{callbacks_yaml}"],
     ["every_n_epochs of zoo.callbacks.Filters in --trainer.callbacks must be a whole number of at least 1, got 0"]),
    # ---- trainer: what the host has ----
    ("precision-unknown", "fit", [*LENET, "--trainer.precision", "13"], ["--trainer.precision must be one of", "got 13"]),
    ("precision-16-mixed-on-cpu", "fit", [*LENET, "--trainer.precision", "16-mixed"],
     ["16-mixed", "needs a CUDA GPU", "bf16-mixed"]),
    ("accelerator-gpu-absent", "fit", [*LENET, "--trainer.accelerator", "gpu"],
     ["--trainer.accelerator gpu asks for a device this host lacks", "--trainer.accelerator cpu"]),
    ("accelerator-cuda-absent", "fit", [*LENET, "--trainer.accelerator", "cuda"], ["--trainer.accelerator cuda asks for"]),
    ("accelerator-tpu-absent", "fit", [*LENET, "--trainer.accelerator", "tpu"], ["--trainer.accelerator tpu asks for"]),
    ("accelerator-misspelled", "fit", [*LENET, "--trainer.accelerator", "cpus"], ["not an accelerator", "did you mean cpu?"]),
    ("strategy-unknown", "fit", [*LENET, "--trainer.strategy", "dpp"], ["not a strategy", "did you mean ddp?"]),
    ("strategy-fsdp-on-cpu", "fit", [*LENET, "--trainer.strategy", "fsdp"], ["fsdp needs CUDA GPUs"]),
    # ---- top-level keys ----
    ("seed-negative", "fit", [*LENET, "--seed_everything", "-1"], ["--seed_everything must be a whole number from 0"]),
    ("seed-text", "fit", [*LENET, "--seed_everything", "abc"], ["--seed_everything", "got abc"]),
    ("save-every-negative", "fit", [*LENET, "--save_every_n_steps", "-3"], ["--save_every_n_steps"]),
    ("reference-value", "fit", [*LENET, "--reference.value", "abc"], ["--reference.value must be a number, got abc"]),
    ("stray-argument", "fit", [*LENET, "stray"], ["unexpected argument 'stray'"]),
    # ---- paths ----
    ("root-dir-cannot-be-made", "fit", [*LENET, "--trainer.default_root_dir", "/proc/zoo-runs"],
     ["cannot create a run folder under /proc/zoo-runs", "--trainer.default_root_dir"]),
    ("root-dir-is-a-file", "fit", [*LENET, "--trainer.default_root_dir", "{file}"], ["is a file, not a folder"]),
    ("root-dir-below-a-file", "fit", [*LENET, "--trainer.default_root_dir", "{file}/runs"], ["is a file, not a folder"]),
    ("run-dir-is-a-file", "fit", [*LENET, "--run_dir", "{file}"], ["--run_dir", "is a file, not a folder"]),
    ("data-root-missing", "fit", [*LENET, "--data.init_args.root", "{missing}"], ["the data root", "does not exist"]),
    ("data-root-is-a-file", "fit", [*LENET, "--data.init_args.root", "{file}"], ["the data root", "is a file"]),
    ("data-root-empty", "fit", [*LENET, "--data.init_args.root", "{empty}"],
     ["fashion-mnist not found", "the only place searched"]),
    # ---- the network and the data ----
    ("num-classes-0", "fit", [*LENET, "--model.init_args.num_classes", "0"],
     ["--model.init_args.num_classes must be a whole number of at least 2, got 0"]),
    ("num-classes-disagree", "fit", [*LENET, "--model.init_args.num_classes", "5"], ["num_classes=5", "10 classes"]),
    ("in-channels-0", "fit", [*LENET, "--model.init_args.in_channels", "0"], ["--model.init_args.in_channels"]),
    ("in-channels-disagree", "fit", [*LENET, "--model.init_args.in_channels", "3"],
     ["lenet5 takes 3-channel images (in_channels=3) but FashionMNISTDataModule gives 1"]),
    ("image-size-disagrees", "fit", [*LENET, "--model.init_args.model_kwargs.image_size", "32"],
     ["lenet5 cannot take the 28x28 images"]),
    ("label-smoothing", "fit", [*LENET, "--model.init_args.label_smoothing", "2"], ["--model.init_args.label_smoothing"]),
    ("model-option-misspelled", "fit", [*LENET, "--model.init_args.modle", "lenet5"], ["did you mean model?"]),
    ("task-misspelled", "fit", [*LENET, "--model", "zoo.taskz.ClassificationTask"],
     ["did you mean zoo.tasks.ClassificationTask?"]),
    ("model-kwargs-not-a-mapping", "fit", [*LENET, "--model.init_args.model_kwargs", "5"],
     ["--model.init_args.model_kwargs must be a mapping of keys, got 5"]),
    ("model-kwargs-key-misspelled", "fit", [*LENET, "--model.init_args.model_kwargs.activaton", "relu"],
     ["lenet5 has no option activaton; did you mean activation? it takes activation, image_size, pool"]),
    # '{"dropuot": 0.5}', its braces doubled: the arguments are format strings
    ("model-kwargs-json-key-misspelled", "fit", ["--recipe", "vgg11_fashionmnist", "--data.init_args.root", "{idx}",
                                                 "--model.init_args.model_kwargs", '{{"dropuot": 0.5}}'],
     ["vgg11_bn has no option dropuot; did you mean dropout? it takes dropout, head, image_size"]),
    ("model-kwargs-key-without-a-close-one", "fit", [*LENET, "--model.init_args.model_kwargs.dropuot", "0.5"],
     ["lenet5 has no option dropuot; it takes activation, image_size, pool"]),
    ("detector-kwargs-key-misspelled", "fit", ["--recipe", "fasterrcnn_shapes", "--model.init_args.model_kwargs.min_sise", "64"],
     ["fasterrcnn_resnet18_fpn has no option min_sise; did you mean min_size?"]),
    ("batch-size-0", "fit", [*LENET, "--data.init_args.batch_size", "0"], ["--data.init_args.batch_size"]),
    ("eval-batch-size-negative", "fit", [*LENET, "--data.init_args.eval_batch_size", "-1"], ["--data.init_args.eval_batch_size"]),
    ("val-size-negative", "fit", [*LENET, "--data.init_args.val_size", "-1"], ["--data.init_args.val_size"]),
    ("val-size-above-1", "fit", [*LENET, "--data.init_args.val_size", "1.5"], ["--data.init_args.val_size", "got 1.5"]),
    ("pad-negative", "fit", [*LENET, "--data.init_args.pad", "-1"], ["--data.init_args.pad"]),
    ("keep-classes-repeated", "fit", [*LENET, "--data.init_args.keep_classes", "[0, 0]"], ["keep_classes must be distinct"]),
    ("train-per-class-0", "fit", [*LENET, "--data.init_args.train_per_class", "0"], ["--data.init_args.train_per_class"]),
    ("data-option-misspelled", "fit", [*LENET, "--data.init_args.batch_sise", "3"], ["did you mean batch_size?"]),
    ("datamodule-misspelled", "fit", [*LENET, "--data", "zoo.data.FashionMNISTDataModul"],
     ["did you mean zoo.data.FashionMNISTDataModule?"]),
    ("folder-image-size", "fit", [*FOLDER, "--data.init_args.root", "{photos}", "--data.init_args.image_size", "4"],
     ["--data.init_args.image_size must be a whole number of at least 8"]),
    ("folder-std-0", "fit", [*FOLDER, "--data.init_args.root", "{photos}", "--data.init_args.std", "[0, 0, 0]"],
     ["each value of --data.init_args.std must be a number above 0"]),
    ("folder-workers-negative", "fit", [*FOLDER, "--data.init_args.root", "{photos}", "--data.init_args.num_workers", "-1"],
     ["--data.init_args.num_workers"]),
    ("folder-network-size", "fit", [*FOLDER, "--data.init_args.root", "{photos}", "--data.init_args.image_size", "64"],
     ["lenet5 cannot take the 64x64 images of FolderDataModule"]),
    ("folder-missing", "fit", [*FOLDER, "--data.init_args.root", "{missing}"], ["does not exist", "<class>/<image>"]),
    ("folder-is-a-file", "fit", [*FOLDER, "--data.init_args.root", "{file}"], ["is a file, not a folder"]),
    ("folder-undecodable-image", "fit", [*FOLDER, "--data.init_args.root", "{photos_text}"],
     ["cannot be read as an image", "remove or replace it"]),
    ("folder-float-image", "fit", [*FOLDER, "--data.init_args.root", "{photos_float}"],
     ["floating-point pixels (Pillow mode F)", "8 or 16 bits"]),
    ("style-image-missing", "fit", [*STYLE, "--data.init_args.root", "{content}", "--model.init_args.style_image", "{missing}"],
     ["does not exist"]),
    ("style-image-not-an-image", "fit", [*STYLE, "--data.init_args.root", "{content}", "--model.init_args.style_image", "{file}"],
     ["cannot be read as an image"]),
    ("content-not-an-image", "fit", [*STYLE, "--data.init_args.root", "{content_text}"],
     ["cannot be read as an image", "remove or replace it"]),
    ("content-size", "fit", [*STYLE, "--data.init_args.root", "{content}", "--data.init_args.size", "8"],
     ["--data.init_args.size must be a whole number of at least 16"]),
    ("segmentation-channels", "fit", ["--recipe", "fcn_shapes", "--model.init_args.in_channels", "1"],
     ["takes 1-channel images (in_channels=1) but ShapesDataModule gives 3"]),
    ("localization-channels", "fit", ["--recipe", "localizer_shapes", "--model.init_args.in_channels", "1"],
     ["resnet20 takes 1-channel images (in_channels=1) but ShapesDataModule gives 3"]),
    ("detection-classes", "fit", ["--recipe", "fasterrcnn_shapes", "--model.init_args.num_classes", "1"],
     ["--model.init_args.num_classes must be a whole number of at least 2"]),
    ("shapes-noise", "fit", ["--recipe", "fcn_shapes", "--data.init_args.noise", "2"], ["--data.init_args.noise"]),
    ("coco-json-missing", "fit", ["--recipe", "fasterrcnn_coco", *NO_DOWNLOAD, "--data.init_args.train_json", "{missing}",
                                  "--data.init_args.train_images", "{coco_images}"], ["COCO annotation file not found"]),
    ("voc-root-is-a-file", "fit", ["--recipe", "fcn_voc", *NO_DOWNLOAD, "--data.init_args.root", "{file}"],
     ["the data root", "is a file"]),
    # ---- the evaluation commands check the same values ----
    ("validate-batch-size", "validate", [*LENET, "--ckpt_path", "{ckpt}", "--data.init_args.batch_size", "0"],
     ["--data.init_args.batch_size"]),
    ("test-accelerator", "test", [*LENET, "--ckpt_path", "{ckpt}", "--trainer.accelerator", "gpu"], ["this host lacks"]),
    ("predict-limit", "predict", [*LENET, "--ckpt_path", "{ckpt}", "--trainer.limit_predict_batches", "-2"],
     ["--trainer.limit_predict_batches"]),
]  # fmt: skip
#: cases whose answer depends on the host: they assume a host without the hardware or library named
NEEDS_NO_GPU = {"precision-16-mixed-on-cpu", "accelerator-gpu-absent", "accelerator-cuda-absent", "strategy-fsdp-on-cpu",
                "test-accelerator"}  # fmt: skip


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fabricated files and folders the cases name."""
    base = tmp_path_factory.mktemp("places")
    photos = make_colour_folders(base / "photos", per_class=4)
    photos_text = base / "photos_text"
    shutil.copytree(photos, photos_text)
    (photos_text / "class1" / "notes.png").write_text("not an image")
    photos_float = base / "photos_float"
    shutil.copytree(photos, photos_float)
    Image.fromarray(np.random.default_rng(0).random((30, 40), dtype=np.float32)).save(
        photos_float / "class2" / "f.tif"
    )
    content = base / "content"
    content.mkdir()
    for index in range(6):
        Image.fromarray(np.full((20, 24, 3), index * 30, dtype=np.uint8)).save(content / f"{index}.png")
    content_text = base / "content_text"
    shutil.copytree(content, content_text)
    (content_text / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (base / "empty").mkdir()
    (base / "file").write_text("a file")
    callbacks = yaml.safe_load((REPO / "recipes" / "lenet5_fashionmnist.yaml").read_text())["trainer"][
        "callbacks"
    ]
    callbacks[0]["init_args"] = {"every_n_epochs": 0}
    (base / "callbacks.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    torch.save({"state_dict": {}}, base / "some.ckpt")
    return {
        "idx": make_idx_dataset(base / "idx", n_train=100, n_test=20),
        "photos": photos,
        "photos_text": photos_text,
        "photos_float": photos_float,
        "content": content,
        "content_text": content_text,
        "empty": base / "empty",
        "missing": base / "missing",
        "file": base / "file",
        "callbacks_yaml": base / "callbacks.yaml",
        "coco_images": make_coco_detection(base / "coco")["images"],
        "ckpt": base / "some.ckpt",
    }


def answer(command: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``zoo <command> <args>``; its exit status and what it wrote on stderr."""
    status = main(command, args)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(("case", "command", "args", "fragments"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_value_is_answered_in_one_line(
    case: str,
    command: str,
    args: list[str],
    fragments: list[str],
    places: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if case in NEEDS_NO_GPU and not NO_GPU:
        pytest.skip("this host has the GPU the case assumes it lacks")
    runs = tmp_path / "runs"
    common = ["--trainer.default_root_dir", str(runs), "--trainer.fast_dev_run", "true", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
    filled = [a.format(**{k: str(v) for k, v in places.items()}) for a in args]
    status, err = answer(command, [*filled[:2], *common, *filled[2:]], capsys)
    assert status == 2, err[-2000:]
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"zoo {command}: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    # a run that never trained leaves no run folder, nor the folders made for it
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.rglob("*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_root_dir_is_refused(
    places: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args = [a.format(idx=places["idx"]) for a in LENET]
        status, err = answer("fit", [*args, "--trainer.default_root_dir", str(locked / "runs")], capsys)
    finally:
        locked.chmod(0o755)
    assert status == 2 and "is not writable" in err.strip().splitlines()[-1]


def test_a_failed_start_keeps_folders_that_were_there(
    places: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a run folder named by the user, and holding a file of theirs, is kept when the run fails before training;
    # one created for the run, with the parents made for it, is removed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    bad = ["--model.init_args.num_classes", "5", "--trainer.max_epochs", "1", "--trainer.logger", "false"]
    args = [a.format(idx=places["idx"]) for a in LENET]
    status, _ = answer("fit", [*args, *bad, "--run_dir", str(mine)], capsys)
    assert status == 2 and (mine / "notes.txt").read_text() == "keep me"
    created = tmp_path / "new" / "deeper"
    status, _ = answer("fit", [*args, *bad, "--run_dir", str(created)], capsys)
    assert status == 2 and not (tmp_path / "new").exists()
    runs = tmp_path / "runs"
    status, _ = answer("fit", [*args, *bad, "--trainer.default_root_dir", str(runs)], capsys)
    assert status == 2 and not runs.exists()


def test_a_failed_start_with_wandb_leaves_no_folder(
    places: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the recipe's W&B logger has started its (offline) run when the data's classes are found to disagree
    runs = tmp_path / "runs"
    args = [a.format(idx=places["idx"]) for a in LENET]
    extra = ["--model.init_args.num_classes", "5", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
             "--trainer.default_root_dir", str(runs)]  # fmt: skip
    status, err = answer("fit", [*args, *extra], capsys)
    assert status == 2 and "num_classes=5" in err.strip().splitlines()[-1]
    assert not runs.exists(), sorted(runs.rglob("*"))


#: SLURM's ``srun`` of 4 tasks on 2 nodes (this process the first), as Lightning's SLURMEnvironment reads it
SLURM = {
    "SLURM_JOB_ID": "7",
    "SLURM_JOB_NAME": "zoo",
    "SLURM_NTASKS": "4",
    "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_NNODES": "2",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
}
#: torchrun's 4 processes, 2 on each of 2 nodes (this process the first)
TORCHRUN = {
    "TORCHELASTIC_RUN_ID": "7",
    "WORLD_SIZE": "4",
    "LOCAL_WORLD_SIZE": "2",
    "GROUP_WORLD_SIZE": "2",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "GROUP_RANK": "0",
}
#: (id, the launcher's environment, arguments, the one line): devices and nodes that disagree with the launcher
LAUNCHES: list[tuple[str, dict[str, str], list[str], str]] = [
    ("slurm-num-nodes", SLURM, ["--trainer.devices", "2", "--trainer.num_nodes", "1"],
     "--trainer.devices 2 --trainer.num_nodes 1 disagree with SLURM's 4 tasks on 2 nodes (SLURM_NTASKS_PER_NODE=2, "
     "SLURM_NNODES=2): pass --trainer.devices 2 --trainer.num_nodes 2"),
    ("slurm-devices", SLURM, ["--trainer.devices", "1", "--trainer.num_nodes", "2", "--trainer.strategy", "ddp"],
     "--trainer.devices 1 --trainer.num_nodes 2 disagree with SLURM's 4 tasks on 2 nodes (SLURM_NTASKS_PER_NODE=2, "
     "SLURM_NNODES=2): pass --trainer.devices 2 --trainer.num_nodes 2"),
    ("slurm-ntasks-without-ntasks-per-node", {k: v for k, v in SLURM.items() if k != "SLURM_NTASKS_PER_NODE"}, [],
     "SLURM started 4 tasks (SLURM_NTASKS=4) without --ntasks-per-node, which Lightning needs to place them: launch "
     "with srun --ntasks-per-node=N (one task per device on each node) and pass --trainer.devices N"),
    ("torchrun-world-size", TORCHRUN, ["--trainer.devices", "2", "--trainer.num_nodes", "1"],
     "--trainer.devices 2 --trainer.num_nodes 1 disagree with torchrun's 4 processes, 2 on each of 2 nodes "
     "(WORLD_SIZE=4, LOCAL_WORLD_SIZE=2, GROUP_WORLD_SIZE=2): pass --trainer.devices 2 --trainer.num_nodes 2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "env", "extra", "expected"), LAUNCHES, ids=[launch[0] for launch in LAUNCHES]
)
def test_devices_and_nodes_that_disagree_with_the_launcher_are_answered_in_one_line(
    case: str,
    env: dict[str, str],
    extra: list[str],
    expected: str,
    places: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every process of the launch refuses before anything is built (each reads the same variables), instead of
    Lightning's traceback once the task, the data and the Trainer are built."""
    for name in [n for n in os.environ if n.startswith(("SLURM_", "TORCHELASTIC_")) or n in TORCHRUN]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runs = tmp_path / "runs"
    args = [a.format(idx=places["idx"]) for a in LENET]
    common = ["--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(runs), "--trainer.logger", "false",
              "--run_dir", str(runs / "run")]  # fmt: skip
    status, err = answer("fit", [*args, *common, *extra], capsys)
    assert status == 2 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == f"zoo fit: error: {expected}"
    assert not runs.exists(), sorted(runs.rglob("*"))


def test_a_fit_says_where_its_data_came_from(
    places: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(idx=places["idx"]) for a in LENET]
    extra = ["--trainer.fast_dev_run", "true", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    assert main("fit", [*args, *extra]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("data: ")]
    assert lines == [f"data: FashionMNIST from {places['idx']} (80 training, 20 validation, 20 test images)"]
