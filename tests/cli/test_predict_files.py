"""``zoo predict --ckpt_path RUN/best.ckpt PATH...`` with detection and segmentation runs: boxes and masks in each
file's own pixels, the overlays, and the writers behind them on predictions made up here."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from zoo.callbacks.file_predictions import file_names, write_file_detections, write_file_masks
from zoo.cli import main

QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"]  # fmt: skip
TINY = ["--data.init_args.num_train", "8", "--data.init_args.num_val", "2", "--data.init_args.num_test", "2",
        "--data.init_args.batch_size", "4", "--data.init_args.image_size", "48", "--trainer.max_steps", "2"]  # fmt: skip


def new_images(folder: Path) -> list[Path]:
    """A 600x400 JPEG, a 90x60 grey PNG and a file that does not decode."""
    folder.mkdir()
    Image.fromarray(skimage.data.coffee()).save(folder / "coffee.jpg")
    Image.fromarray(skimage.data.camera()).resize((90, 60)).save(folder / "camera.png")
    (folder / "broken.png").write_bytes(b"not a PNG")
    return [folder / "broken.png", folder / "camera.png", folder / "coffee.jpg"]


def fitted(recipe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The best checkpoint of a two-step fit of ``recipe`` on a few 48-pixel shapes images."""
    args = ["--recipe", recipe, "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY, *QUIET]
    assert main("fit", args) == 0, capsys.readouterr().err[-3000:]
    run = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run folder: "))
    return run / "best.ckpt"


def test_a_segmentation_run_writes_a_mask_per_file_at_its_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = fitted("fcn_shapes", tmp_path, capsys)
    broken, camera, coffee = new_images(tmp_path / "new")
    overlay = tmp_path / "painted"
    status = main("predict", ["--ckpt_path", str(checkpoint), str(tmp_path / "new"), "--overlay", str(overlay),
                              *QUIET[:4]])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err[-3000:]
    masks = checkpoint.with_name("best-predictions")
    assert out.strip().splitlines()[-1] == (
        f"2 masks written to {masks} (palette PNGs: pixel value = class), 2 labelled images to {overlay}; "
        "1 file skipped (not decodable)"
    )
    assert f"skipped {broken}: cannot be read as an image" in err
    for source, size in ((camera, (90, 60)), (coffee, (600, 400))):
        with Image.open(masks / f"{source.stem}.png") as png:
            assert png.mode == "P" and png.size == size
            assert set(np.unique(np.array(png)).tolist()) <= {0, 1, 2, 3}
        with Image.open(overlay / f"{source.stem}.png") as picture:  # 256..1024 pixels on the longer side
            assert picture.mode == "RGB" and max(picture.size) in (270, 600)
    again = main("predict", ["--ckpt_path", str(checkpoint), str(coffee), *QUIET[:4]])
    assert again == 2 and "exists" in capsys.readouterr().err  # the folder of masks is not written over


def test_a_detection_run_writes_a_row_per_box_in_the_file_s_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = fitted("fasterrcnn_shapes", tmp_path, capsys)
    _, camera, coffee = new_images(tmp_path / "new")
    output, overlay = tmp_path / "boxes.csv", tmp_path / "boxed"
    status = main("predict", ["--ckpt_path", str(checkpoint), str(camera), str(coffee), "--score_threshold", "0",
                              "--output", str(output), "--overlay", str(overlay), *QUIET[:4]])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err[-3000:]
    rows = list(csv.DictReader(output.open()))
    assert out.strip().splitlines()[-1] == (
        f"{len(rows)} boxes (score >= 0) in 2 images written to {output}, 2 labelled images to {overlay}"
    )
    assert {row["file"] for row in rows} == {str(camera), str(coffee)}
    for row in rows:  # an untrained detector still finds boxes at score 0, inside the file it was given
        width, height = (90, 60) if row["file"] == str(camera) else (600, 400)
        assert row["class"] in ("circle", "square", "triangle") and 0 <= float(row["score"]) <= 1
        x1, y1, x2, y2 = (float(row[key]) for key in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 <= x2 <= width + 0.1 and 0 <= y1 <= y2 <= height + 0.1
    assert sorted(p.name for p in overlay.iterdir()) == ["camera.png", "coffee.png"]
    capsys.readouterr()
    status = main("predict", ["--ckpt_path", str(checkpoint), "--score_threshold", "0.5", *QUIET[:4]])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0 and "--score_threshold is for image files" in err


def test_boxes_are_mapped_from_the_network_s_input_to_each_file(tmp_path: Path) -> None:
    wide, small = tmp_path / "wide.png", tmp_path / "small.png"
    Image.new("RGB", (300, 100)).save(wide)
    Image.new("RGB", (48, 96)).save(small)
    found = [
        {"boxes": torch.tensor([[0.0, 0.0, 48.0, 48.0], [24.0, 12.0, 36.0, 24.0]]),
         "labels": torch.tensor([1, 3]), "scores": torch.tensor([0.9, 0.4])},
        {"boxes": torch.tensor([[12.0, 24.0, 24.0, 48.0]]), "labels": torch.tensor([2]),
         "scores": torch.tensor([0.2])},
    ]  # fmt: skip
    # the batches come in any order (several processes); the rows follow the files
    batches = [
        {"label": torch.tensor([1]), "detections": found[1:]},
        {"label": torch.tensor([0]), "detections": found[:1]},
    ]
    names = ["background", "circle", "square", "triangle"]
    output = tmp_path / "boxes.csv"
    images, boxes = write_file_detections(batches, output, [wide, small], names, (3, 48, 48), threshold=0.3)
    assert (images, boxes) == (2, 2)
    assert list(csv.reader(output.open())) == [
        ["file", "class", "score", "x1", "y1", "x2", "y2"],
        [str(wide), "circle", "0.900000", "0.0", "0.0", "300.0", "100.0"],  # x by 300/48, y by 100/48
        [str(wide), "triangle", "0.400000", "150.0", "25.0", "225.0", "50.0"],
        [str(small), "", "", "", "", "", ""],  # its one box scored under the threshold
    ]
    with pytest.raises(FileExistsError):
        write_file_detections(batches, output, [wide, small], names, (3, 48, 48), threshold=0.3)


def test_masks_are_brought_to_each_file_s_size_without_blending_classes(tmp_path: Path) -> None:
    files = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"]  # one stem in two folders
    for file, size in zip(files, [(8, 4), (2, 2)], strict=True):
        file.parent.mkdir()
        Image.new("L", size).save(file)
    predicted = torch.tensor([[[0, 1], [2, 3]], [[3, 3], [0, 1]]])
    masks, overlay = tmp_path / "masks", tmp_path / "painted"
    count = write_file_masks([{"label": torch.tensor([0, 1]), "predicted": predicted}], masks, files,
                             ["background", "circle", "square", "triangle"], overlay)  # fmt: skip
    assert count == 2 and file_names(files) == ["x.png", "x-2.png"]
    first, second = (np.array(Image.open(masks / name)) for name in ("x.png", "x-2.png"))
    assert first.shape == (4, 8) and set(np.unique(first).tolist()) == {0, 1, 2, 3}
    assert (first[:2, :4] == 0).all() and (first[2:, 4:] == 3).all()  # nearest: each quarter one class
    assert second.tolist() == [[3, 3], [0, 1]]
    assert sorted(p.name for p in overlay.iterdir()) == ["x-2.png", "x.png"]
