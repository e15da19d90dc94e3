"""ConfusionMatrix and PredictionGrid read what the task's steps return: their counts and pictures equal those
computed here by hand from the same returned outputs.

Figure sizes follow from zoo.figures.drawing's layout: a confusion matrix of K classes is 96 + 36 K + 2 px square,
a grid of captioned images 98 px a column (8 columns) and 124 px a row, plus 2 px.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import make_idx_dataset
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection

from zoo.callbacks import ConfusionMatrix, PredictionGrid
from zoo.data import FashionMNISTDataModule
from zoo.tasks import ClassificationTask
from zoo.tasks.base import BaseTask, Stage


class Recorder(L.Callback):
    """Keeps the outputs Lightning hands to the callbacks, batch by batch."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                *args: Any) -> None:  # fmt: skip
        self.outputs.append(outputs)


def quiet_trainer(root: Path, callbacks: list[L.Callback]) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, callbacks=callbacks, default_root_dir=str(root),
                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)  # fmt: skip


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture
def validated(tmp_path: Path) -> tuple[Path, ConfusionMatrix, Recorder]:
    """An untrained LeNet-5 validated on 50 fabricated Fashion-MNIST images, with both figure callbacks."""
    root = make_idx_dataset(tmp_path / "idx", n_train=120, n_test=20)
    data = FashionMNISTDataModule(str(root), val_size=50, batch_size=16)
    torch.manual_seed(0)
    confusion, recorder = ConfusionMatrix(), Recorder()
    trainer = quiet_trainer(tmp_path, [confusion, PredictionGrid(), recorder])
    trainer.validate(
        ClassificationTask("lenet5", model_kwargs={"image_size": 28}), datamodule=data, verbose=False
    )
    return tmp_path / "figures", confusion, recorder


def test_the_confusion_matrix_counts_the_logits_and_targets_the_steps_return(
    validated: tuple[Path, ConfusionMatrix, Recorder],
) -> None:
    figures, confusion, recorder = validated
    assert len(recorder.outputs) == 4  # 16 + 16 + 16 + 2 images
    by_hand = torch.zeros(10, 10, dtype=torch.long)
    for outputs in recorder.outputs:
        for true, predicted in zip(outputs["target"], outputs["logits"].argmax(1), strict=True):
            by_hand[true, predicted] += 1
    assert confusion.matrix is not None and torch.equal(confusion.matrix, by_hand)
    assert int(by_hand.sum()) == 50 and int(by_hand.diag().sum()) < 50  # untrained: some mistakes to count
    assert image_size(figures / "epoch000-val-confusion.png") == (96 + 10 * 36 + 2,) * 2


def test_the_grids_show_the_first_images_and_the_mistakes_the_steps_return(
    validated: tuple[Path, ConfusionMatrix, Recorder],
) -> None:
    figures, _, recorder = validated
    assert image_size(figures / "epoch000-val-predictions.png") == (8 * 98 + 2, 2 * 124 + 2)  # 16 images
    wrong = sum(int((o["logits"].argmax(1) != o["target"]).sum()) for o in recorder.outputs)
    shown = min(16, wrong)
    width, height = image_size(figures / "epoch000-val-mistakes.png")
    assert (width, height) == (min(8, shown) * 98 + 2, -(-shown // 8) * 124 + 2)


class Echo(BaseTask):
    """A classifier whose logits are its inputs, so a test chooses every prediction."""

    kind = "classification"
    num_classes = 3

    def configure_models(self) -> None:
        self.head = nn.Linear(3, 3, bias=False)
        nn.init.eye_(self.head.weight)

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({})

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> dict[str, Tensor]:
        logits = self.head(batch[0])
        return {"loss": logits.sum(), "logits": logits, "target": batch[1]}


def test_confusion_matrix_matches_a_hand_count(tmp_path: Path) -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0, 2, 1])
    loader = DataLoader(TensorDataset(F.one_hot(predictions, 3).float(), labels), batch_size=3)  # 3, 3 and 1
    callback = ConfusionMatrix()
    quiet_trainer(tmp_path, [callback]).validate(Echo(), loader, verbose=False)
    # rows true, columns predicted: cats 0,1; dogs 1,1; birds 0,2,1
    expected = [[1, 1, 0], [0, 2, 0], [1, 1, 1]]
    assert callback.matrix is not None and callback.matrix.tolist() == expected
    png = tmp_path / "figures" / "epoch000-val-confusion.png"
    with Image.open(png) as image:
        assert image.size == (96 + 3 * 36 + 2,) * 2
        pixel = image.convert("RGB").getpixel

        def corner(true: int, predicted: int) -> tuple[int, int]:  # inside the cell, away from its count
            return 96 + predicted * 36 + 3, 96 + true * 36 + 3

        assert pixel(corner(0, 2)) == (255, 255, 255)  # no cat taken for a bird: white
        assert pixel(corner(1, 1)) == (24, 70, 140)  # every dog right: the darkest shade
        assert pixel(corner(2, 2)) == pixel(corner(2, 0)) != (255, 255, 255)  # a third of the birds each


class Silent(Echo):
    """Returns its loss only: nothing for the figures to read."""

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        return {"loss": self.step(batch, "val")["loss"].detach()}


def test_steps_that_return_no_logits_are_left_out_with_a_warning(tmp_path: Path) -> None:
    loader = DataLoader(TensorDataset(torch.eye(3), torch.arange(3)), batch_size=2)
    callback = ConfusionMatrix()
    with pytest.warns(UserWarning, match="the steps of 2 batches returned no logits and target"):
        quiet_trainer(tmp_path, [callback]).validate(Silent(), loader, verbose=False)
    assert callback.matrix is not None and int(callback.matrix.sum()) == 0
