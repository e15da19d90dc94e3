"""Your own images through the command line: ``zoo fit --recipe folder_lenet5 --data.root PHOTOS`` and
``zoo predict --ckpt_path RUN/best.ckpt PATH...``, on folders these tests make from scikit-image's sample photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import yaml
from conftest import REPO, make_idx_dataset
from jsonargparse import Namespace
from PIL import Image

from zoo.cli import main
from zoo.cli.lightning import _weights_channels
from zoo.cli.predict import split_paths

SAMPLES = ("astronaut", "chelsea", "coffee")
QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]  # fmt: skip


def make_photos(root: Path, *, per_class: int = 12, grey: bool = False) -> Path:
    """``root/<class>/*``: 3 classes, crops of one scikit-image photo each, PNG and JPEG of several sizes."""
    rng = np.random.default_rng(0)
    for name in SAMPLES:
        picture = getattr(skimage.data, name)()
        (root / name).mkdir(parents=True)
        height, width = picture.shape[:2]
        for index in range(per_class):
            side = int(rng.integers(150, min(height, width)))
            top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            crop = Image.fromarray(picture[top : top + side, left : left + side]).resize((40 + index, 40))
            (crop.convert("L") if grey else crop).save(
                root / name / f"{index:02d}.{'png' if index % 2 else 'jpg'}"
            )
    return root


def fit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main("fit", list(args))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("zoo ") and ": error: " in last, last
    for fragment in fragments:
        assert fragment in last, last


def test_paths_are_told_from_overrides() -> None:
    flags, paths = split_paths(
        ["--ckpt_path", "b.ckpt", "a.jpg", "photos/", "--top_k", "2", "--output=o.csv", "c.png"]
    )
    assert flags == ["--ckpt_path", "b.ckpt", "--top_k", "2", "--output=o.csv"]
    assert paths == ["a.jpg", "photos/", "c.png"]
    assert split_paths(["-h"]) == (["-h"], [])


def test_train_on_a_folder_then_predict_new_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = make_photos(tmp_path / "PHOTOS")
    runs = tmp_path / "runs"
    common = ["--recipe", "folder_lenet5", "--data.root", str(photos), "--trainer.default_root_dir", str(runs),
              "--trainer.max_epochs", "15", "--data.batch_size", "8", "--data.num_workers", "0", *QUIET]  # fmt: skip
    status, out, err = fit(capsys, *common)
    assert status == 0, err[-3000:]
    run = Path(out.strip().splitlines()[-1].removeprefix("run folder: "))
    assert run.parent == runs / "folder_lenet5-PHOTOS"  # named after the recipe and the data
    assert "published" not in out  # no reference of another dataset
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["reference"] is None and metrics["test"]["test_acc"] >= 0.7, metrics["test"]
    assert {f"test_acc/{name}" for name in SAMPLES} <= set(metrics["test"])  # three classes, by folder name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["root"] == str(photos)
    assert not {"num_classes", "in_channels"} & set(config["model"]["init_args"])  # they follow the data
    checkpoint = torch.load(run / "best.ckpt", weights_only=True)
    assert checkpoint["zoo_data"]["classes"] == list(SAMPLES) and checkpoint["zoo_data"]["image_shape"] == [
        3,
        28,
        28,
    ]
    assert (
        checkpoint["hyper_parameters"]["num_classes"] == 3
        and checkpoint["hyper_parameters"]["in_channels"] == 3
    )
    status, out, err = fit(capsys, *common, "--ckpt_path", "last")  # the run of this folder, resumed
    assert status == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == f"run folder: {run}" and len(list(run.parent.iterdir())) == 1

    # prediction needs the checkpoint only: no training images on disk
    photos.rename(tmp_path / "gone")
    new = tmp_path / "new"
    new.mkdir()
    coffee = skimage.data.coffee()
    Image.fromarray(coffee).save(new / "coffee.jpg")  # 600x400 JPEG
    Image.fromarray(coffee).convert("RGBA").resize((80, 60)).save(new / "rgba.png")
    Image.fromarray(coffee).convert("P").resize((50, 70)).save(new / "palette.gif")
    Image.fromarray(skimage.data.astronaut()).convert("L").save(tmp_path / "grey.png")
    (new / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    output, overlay = tmp_path / "predictions.csv", tmp_path / "labelled"
    status = main("predict", ["--ckpt_path", str(run / "best.ckpt"), str(tmp_path / "grey.png"), str(new),
                              "--top_k", "2", "--output", str(output), "--overlay", str(overlay), *QUIET[:4]])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err[-3000:]
    assert f"skipped {new / 'broken.jpg'}: " in err and "cannot be read as an image" in err
    assert out.strip().splitlines()[-1] == (
        f"4 predictions written to {output}, 4 labelled images to {overlay}; 1 file skipped (not decodable)"
    )
    rows = list(csv.reader(output.open()))
    assert rows[0] == ["file", "class", "probability", "class_2", "probability_2"]
    files = [row[0] for row in rows[1:]]
    assert files == [
        str(tmp_path / "grey.png"),
        *(str(new / n) for n in ("coffee.jpg", "palette.gif", "rgba.png")),
    ]
    for row in rows[1:]:
        assert row[1] in SAMPLES and row[3] in SAMPLES and row[1] != row[3]
        assert 1 >= float(row[2]) >= float(row[4]) >= 0
    assert rows[2][1] == "coffee"  # the whole photo the coffee class was cropped from
    assert sorted(p.name for p in overlay.iterdir()) == ["coffee.png", "grey.png", "palette.png", "rgba.png"]
    assert Image.open(overlay / "coffee.png").size == (600, 400)
    again = main("predict", ["--ckpt_path", str(run / "best.ckpt"), str(new / "coffee.jpg"), *QUIET[:4]])
    assert again == 0
    default = run / "best-predictions.csv"  # beside the checkpoint, with every class: top_k is min(5, 3)
    assert next(csv.reader(default.open()))[-2:] == ["class_3", "probability_3"]
    capsys.readouterr()

    # bad input, each one line
    old = run / "old.ckpt"  # a checkpoint written before checkpoints kept their data
    torch.save({k: v for k, v in checkpoint.items() if k != "zoo_data"}, old)
    for args, fragments in [
        ([str(new / "coffee.jpg"), "--ckpt_path", str(old)], ["does not say which classes and image shape"]),
        (["--ckpt_path", str(run / "best.ckpt"), str(tmp_path / "nope.jpg")], ["nope.jpg does not exist"]),
        (
            ["--ckpt_path", str(run / "best.ckpt"), "--top_k", "2"],
            ["--top_k is for image files"],
        ),
        (["--ckpt_path", str(run / "best.ckpt"), str(new), "--output", str(output)], ["exists"]),
    ]:
        status = main("predict", args)
        one_line_error(status, capsys.readouterr().err, *fragments)


def test_folder_resnet18_takes_the_folders_classes_and_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = yaml.safe_load((REPO / "recipes" / "folder_resnet18.yaml").read_text())
    init = recipe["model"]["init_args"]
    assert init["weights"] == "imagenet" and "num_classes" not in init and "reference" not in recipe
    assert _weights_channels(Namespace(init_args=Namespace(model="resnet18", weights="imagenet"))) == 3
    assert _weights_channels(Namespace(init_args=Namespace(model="resnet18", weights=None))) is None
    grey = make_photos(tmp_path / "grey", per_class=3, grey=True)
    # no ImageNet weights offline: the same recipe from scratch, on grey images, takes one channel
    status, out, err = fit(capsys, "--recipe", "folder_resnet18", "--data.root", str(grey), "--model.init_args.weights",
                           "null", "--trainer.fast_dev_run", "true", "--data.num_workers", "0",
                           "--trainer.default_root_dir", str(tmp_path / "runs"), *QUIET)  # fmt: skip
    assert status == 0, err[-3000:]
    run = Path(out.strip().splitlines()[-1].removeprefix("run folder: "))
    assert run.parent.name == "folder_resnet18-grey"
    assert json.loads((run / "metrics.json").read_text())["test"]["test_acc"] >= 0


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ("few", ["class 'coffee' has 1 image", "at least 2 a class", "add images of 'coffee'"]),
        ("size", ["lenet5 cannot take the 64x64 images", "(28) with --data.init_args.image_size"]),
        ("num_classes", ["--model.init_args.num_classes follows from the data", "drop it"]),
        ("no_root", ["folder_lenet5 trains on your own images", "--data.root PHOTOS"]),
    ],
)
def test_a_folder_the_network_cannot_take_is_one_line(
    change: str, fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = make_photos(tmp_path / "photos", per_class=4)
    args = ["--recipe", "folder_lenet5", "--data.root", str(photos), "--trainer.default_root_dir",
            str(tmp_path / "runs"), "--data.num_workers", "0", *QUIET]  # fmt: skip
    if change == "few":
        for extra in sorted((photos / "coffee").iterdir())[1:]:
            extra.unlink()
    elif change == "size":
        args += ["--data.image_size", "64"]
    elif change == "num_classes":
        args += ["--model.init_args.num_classes", "3"]
    else:
        args = args[:2] + args[4:]
    status, _, err = fit(capsys, *args)
    one_line_error(status, err, *fragments)
    assert not list((tmp_path / "runs").glob("*/*/last.ckpt"))  # refused before training


def test_recipes_that_give_num_classes_keep_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_idx_dataset(tmp_path / "idx", n_train=100, n_test=20)
    common = ["--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(root), "--data.init_args.val_size",
              "20", "--trainer.default_root_dir", str(tmp_path / "runs"), *QUIET]  # fmt: skip
    status, out, err = fit(capsys, *common, "--trainer.fast_dev_run", "true")
    assert status == 0, err[-3000:]
    run = Path(out.strip().splitlines()[-1].removeprefix("run folder: "))
    assert run.parent.name == "lenet5_fashionmnist"  # not named after the data
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["num_classes"] == 10
    status, _, err = fit(capsys, *common, "--model.init_args.num_classes", "5")
    one_line_error(status, err, "num_classes=5", "10 classes")  # still checked, not overridden by the data
