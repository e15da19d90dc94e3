"""Seeing inside the networks: the figure callbacks' PNGs and logger images, and ``python -m zoo.visualize``.

Figure sizes follow from zoo.callbacks.drawing's layout (tiles of 64 px for maps and filters, 96 px + 26 px of
caption for images, 2 px between tiles; a confusion matrix is 96 + 36 px per class + 2 px square).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, make_idx_dataset
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoo.callbacks import ConfusionMatrix, FeatureMaps, Filters, PredictionGrid
from zoo.cli import main as zoo_main
from zoo.cli.visualize import main as visualize
from zoo.data import FashionMNISTDataModule
from zoo.errors import ZooError
from zoo.tasks import ClassificationTask

LENET_FIGURES = {  # LeNet-5 on 28x28 images, 10 classes: 6 then 16 channels, 6 filters of 5x5
    "filters": (6 * 66 + 2, 68),
    "featuremaps-net.features.0": ((1 + 6) * 66 + 2, 4 * 66 + 2),  # 4 images; the image, then 6 maps
    "featuremaps-net.features.3": ((1 + 16) * 66 + 2, 4 * 66 + 2),
    "val-confusion": (96 + 10 * 36 + 2,) * 2,
    "val-predictions": (8 * 98 + 2, 2 * 124 + 2),  # 16 images, 8 a row
}


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one short lenet5_fashionmnist fit on fabricated data, through the CLI, with W&B offline."""
    tmp = tmp_path_factory.mktemp("fit")
    root = make_idx_dataset(tmp / "idx", n_train=160, n_test=40)
    args = ["--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(root),
            "--data.init_args.val_size", "40", "--data.init_args.batch_size", "32",
            "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp / "runs"),
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false"]  # fmt: skip
    assert zoo_main("fit", args) == 0
    (folder,) = (tmp / "runs" / "lenet5_fashionmnist").iterdir()
    return folder


# ---- the callbacks in a recipe run -------------------------------------------------------------------------


def test_a_fit_leaves_figures_of_the_expected_sizes_in_the_run_folder(run: Path) -> None:
    figures = run / "figures"
    for name, size in LENET_FIGURES.items():
        assert image_size(figures / f"epoch000-{name}.png") == size, name  # the last (only) epoch draws
    # the CLI's final evaluation of best.ckpt draws on the validation and test splits
    for name in ("val-confusion", "test-confusion", "test-predictions", "filters"):
        assert (figures / f"best-{name}.png").is_file(), name
    width, height = image_size(figures / "best-test-mistakes.png")
    assert width <= 8 * 98 + 2 and (height - 2) % 124 == 0


def test_the_offline_wandb_run_holds_the_images(run: Path) -> None:
    (wandb_run,) = (run / "wandb").glob("offline-run-*")
    media = wandb_run / "files" / "media" / "images"
    for key, size in [
        ("val/confusion", LENET_FIGURES["val-confusion"]),
        ("filters", LENET_FIGURES["filters"]),
    ]:
        files = sorted(media.glob(f"{key}_*.png"))
        assert len(files) == 2, key  # epoch 0, then the best checkpoint's validation
        assert all(image_size(file) == size for file in files)
    assert list(media.glob("test/confusion_*.png")) and list(media.glob("featuremaps/net.features.3_*.png"))
    (records,) = wandb_run.glob("*.wandb")
    history = records.read_bytes()
    for key in (b"val/confusion", b"val/predictions", b"val/mistakes", b"test/confusion", b"filters"):
        assert key in history, key
    assert b'"images/separated"' in history  # what W&B records for an image entry


# ---- the confusion matrix on a tiny example ------------------------------------------------------------------


class Echo(L.LightningModule):
    """A 'network' whose logits are its inputs, so a test chooses every prediction."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 3, bias=False)
        nn.init.eye_(self.head.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self(batch[0])


class Pets(L.LightningDataModule):
    classes = ("cat", "dog", "bird")
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0, 2, 1])

    def val_dataloader(self) -> DataLoader:
        logits = F.one_hot(self.predictions, 3).float()
        return DataLoader(TensorDataset(logits, self.labels), batch_size=3)  # batches of 3, 3 and 1


def quiet_trainer(
    root: Path, callbacks: list[L.Callback], logger: object = False, **kwargs: object
) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=logger, callbacks=callbacks, default_root_dir=str(root),
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def test_an_unknown_layer_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"no layer named 'heads'.*did you mean head"):
        quiet_trainer(tmp_path, [FeatureMaps(layers=["heads"])]).validate(Echo(), datamodule=Pets())


def test_tensorboard_gets_the_figures(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = make_idx_dataset(tmp_path / "idx", n_train=100, n_test=20)
    data = FashionMNISTDataModule(str(root), batch_size=32, val_size=30)
    task = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    logger = TensorBoardLogger(tmp_path / "tb", name="lenet")
    callbacks = [
        Filters(),
        FeatureMaps(layers=["net.features.3"]),
        ConfusionMatrix(),
        PredictionGrid(num_images=4),
    ]
    trainer = quiet_trainer(
        tmp_path, callbacks, logger, max_epochs=1, limit_train_batches=2, enable_checkpointing=False
    )
    trainer.fit(task, datamodule=data)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    tags = set(events.Tags()["images"])
    assert {"filters", "featuremaps/net.features.3", "val/confusion", "val/predictions"} <= tags
    confusion = events.Images("val/confusion")[0]
    assert (confusion.width, confusion.height) == LENET_FIGURES["val-confusion"]
    # with TensorBoard, the PNGs go in the logger's version folder
    assert (Path(logger.log_dir) / "figures" / "epoch000-val-predictions.png").is_file()


# ---- python -m zoo.visualize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "sizes"),
    [
        (["--what", "featuremaps", "--num_images", "3"],
         {"featuremaps-net.features.0.png": (7 * 66 + 2, 3 * 66 + 2),
          "featuremaps-net.features.3.png": (17 * 66 + 2, 3 * 66 + 2)}),
        (["--what", "filters"], {"filters-net.features.0.png": LENET_FIGURES["filters"]}),
        (["--what", "confusion"], {"confusion.png": LENET_FIGURES["val-confusion"]}),
        (["--what", "saliency", "--num_images", "4"], {"saliency.png": (8 * 98 + 2, 124 + 2)}),  # image, map
        (["--what", "maximize", "--layer", "net.features.3", "--channel", "5", "--steps", "5"],
         {"maximize-net.features.3-5.png": (98 + 2, 124 + 2)}),
        (["--what", "maximize", "--target", "Sneaker", "--steps", "5"], {"maximize-class-7.png": (98 + 2, 126)}),
        (["--what", "maximize", "--steps", "3"], {"maximize-classes.png": (8 * 98 + 2, 2 * 124 + 2)}),
    ],
    ids=["featuremaps", "filters", "confusion", "saliency", "maximize-filter", "maximize-class", "maximize-all"],
)  # fmt: skip
def test_visualize_draws_from_a_checkpoint(
    run: Path,
    tmp_path: Path,
    args: list[str],
    sizes: dict[str, tuple[int, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert visualize(["--ckpt_path", str(run / "best.ckpt"), "--output", str(out), *args]) == 0
    assert {p.name: image_size(p) for p in out.iterdir()} == sizes
    printed = capsys.readouterr().out
    assert all(f"wrote {out / name}" in printed for name in sizes)
    if "confusion" in args:
        assert "test accuracy" in printed and "over 40 images" in printed


def test_visualize_reads_a_checkpoint_outside_its_run_folder_with_recipe_and_overrides(
    run: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "kept.ckpt"
    moved.write_bytes((run / "best.ckpt").read_bytes())
    root = make_idx_dataset(tmp_path / "other", n_train=100, n_test=20)
    args = ["--ckpt_path", str(moved), "--what", "confusion", "--output", str(tmp_path / "out"),
            "--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(root), "--data.init_args.val_size", "10"]  # fmt: skip
    assert visualize(args) == 0
    assert image_size(tmp_path / "out" / "confusion.png") == LENET_FIGURES["val-confusion"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--ckpt_path", "{missing}", "--what", "filters"], ["does not exist"]),
        (["--what", "filters"], ["--ckpt_path"]),
        (["--ckpt_path", "{best}", "--what", "histogram"], ["--what", "invalid choice", "histogram"]),
        (["--ckpt_path", "{best}", "--what", "featuremaps", "--layer", "net.features.9"],
         ["no layer named 'net.features.9'", "net.features.0"]),
        (["--ckpt_path", "{best}", "--what", "confusion"], ["confusion.png exists"]),
        (["--ckpt_path", "{alone}", "--what", "filters"], ["no config.yaml", "--recipe"]),
        (["--ckpt_path", "{best}", "--what", "maximize", "--layer", "net.features.0", "--channel", "6"],
         ["--channel 6", "0..5"]),
        (["--ckpt_path", "{best}", "--what", "maximize", "--target", "Sandals"], ["--target 'Sandals'", "Sandal"]),
        (["--ckpt_path", "{best}", "--what", "filters", "--trainer.max_epoch", "3"], ["max_epoch"]),
    ],
    ids=["missing-ckpt", "no-ckpt", "what", "layer", "exists", "no-config", "channel", "target", "override"],
)  # fmt: skip
def test_visualize_bad_input_is_one_line_and_exit_2(
    run: Path, tmp_path: Path, args: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "confusion.png").write_bytes(b"precious")
    alone = tmp_path / "alone.ckpt"
    alone.write_bytes((run / "best.ckpt").read_bytes())
    places = {
        "{missing}": str(tmp_path / "nope.ckpt"),
        "{best}": str(run / "best.ckpt"),
        "{alone}": str(alone),
    }
    capsys.readouterr()
    assert visualize([places.get(a, a) for a in args] + ["--output", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo visualize: error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0]
    assert (out / "confusion.png").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png"]


def test_python_m_zoo_visualize_takes_the_old_spellings_and_answers_bad_input_in_one_line(
    run: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zoo.visualize", "--ckpt", str(run / "best.ckpt"), "--what", "filters",
         "--layer", "net.classifier.9", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    *notices, line = result.stderr.strip().splitlines()
    assert notices == [
        "zoo visualize: --ckpt is deprecated, use --ckpt_path (the old spelling goes in the next release)",
        "zoo visualize: --out is deprecated, use --output (the old spelling goes in the next release)",
    ]
    assert line.startswith("zoo visualize: error: no layer named 'net.classifier.9'")
