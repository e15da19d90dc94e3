"""An image of a folder that passes the listing (its header reads) but does not decode when its batch is made stops
the run with one line naming the file, whether decoded in the main process or in a worker process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.data import FolderDataModule
from zoo.data.folder import Undecodable, collate_decodable
from zoo.errors import DataError


def make_folder(root: Path, *, broken: str) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png``, 3 classes of 8 and 2, each its own colour; the
    training image ``broken`` (``class1/3.png``) cut to half its bytes, after its header."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        for label in range(3):
            (root / split / f"class{label}").mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 60, (30, 40, 3), dtype=np.uint8)
                pixels[..., label] = 200
                Image.fromarray(pixels).save(root / split / f"class{label}" / f"{index}.png")
    target = root / "train" / broken
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    with Image.open(target) as image:  # the header still reads: the listing lets it through
        assert image.size == (40, 30)
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_that_does_not_decode_mid_epoch_stops_the_run_naming_it(
    workers: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = make_folder(tmp_path / "PHOTOS", broken="class1/3.png")
    status = main(
        "fit",
        ["--recipe", "folder_lenet5", "--data.root", str(photos), "--data.batch_size", "4",
         "--data.num_workers", str(workers), "--trainer.default_root_dir", str(tmp_path / "runs"),
         "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.callbacks", "[]",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.accelerator", "cpu"],
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2, err[-3000:]
    assert "Traceback" not in err and "worker" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        f"zoo fit: error: {photos / 'train' / 'class1' / '3.png'} cannot be read as an image: "
    ), last
    assert "image file is truncated" in last
    assert "(found while training: epoch 0, step " in last
    assert last.endswith("; replace the file and resume, or remove it and start a new run"), last


def test_a_batch_holding_an_undecodable_image_becomes_its_message() -> None:
    good = (np.zeros(1), 0)
    failed = Undecodable("x.png cannot be read as an image: image file is truncated")
    assert collate_decodable([good, failed, good]) is failed
    assert collate_decodable([good, good])[1].tolist() == [0, 0]
    data = FolderDataModule(root="unused")
    with pytest.raises(
        DataError, match=r"^x.png cannot be read as an image: image file is truncated; replace"
    ):
        data.on_before_batch_transfer(failed, 0)
    batch = [np.zeros(1)]
    assert data.on_before_batch_transfer(batch, 0) is batch


def test_the_broken_file_is_what_the_reader_rejects(tmp_path: Path) -> None:
    photos = make_folder(tmp_path / "PHOTOS", broken="class2/0.png")
    data = FolderDataModule(root=str(photos), image_size=28, num_workers=0)
    data.setup("fit")
    train = data.datasets["train"]
    samples = [train[index] for index in range(len(train))]  # type: ignore[arg-type]
    failed = [sample for sample in samples if isinstance(sample, Undecodable)]
    assert [sample.message.split(" cannot")[0] for sample in failed] == [
        str(photos / "train" / "class2" / "0.png")
    ]
