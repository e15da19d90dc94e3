"""PredictionWriter: the CSV of a classifier's (and a localizer's) predictions, a task's own files, and what it
refuses: an existing file; the shares of several processes put back in order."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import make_idx_dataset

from zoo.callbacks import PredictionWriter
from zoo.callbacks.prediction_writer import gather_predictions
from zoo.data import FashionMNISTDataModule, ShapesDataModule
from zoo.errors import ZooError
from zoo.tasks import AutoencoderTask, ClassificationTask, LocalizationTask


def predicting_trainer(root: Path, writer: PredictionWriter) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, callbacks=[writer], default_root_dir=str(root),
                     enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


@pytest.fixture
def fashion(tmp_path: Path) -> FashionMNISTDataModule:
    """Fabricated Fashion-MNIST: 40 test images, predicted in batches of 16."""
    root = make_idx_dataset(tmp_path / "idx", n_train=60, n_test=40)
    return FashionMNISTDataModule(str(root), val_size=10, batch_size=16)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_classifier_s_predictions_become_one_csv_row_an_image(
    tmp_path: Path, fashion: FashionMNISTDataModule
) -> None:
    torch.manual_seed(0)
    task = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    output = tmp_path / "out" / "preds.csv"
    writer = PredictionWriter(output)
    assert writer.summary == ""
    predicting_trainer(tmp_path, writer).predict(task, datamodule=fashion, return_predictions=False)
    assert writer.summary == f"40 predictions written to {output}"
    rows = read_rows(output)
    assert list(rows[0]) == ["index", "label", "predicted", "confidence", "predicted_name"]
    _, labels = fashion.splits["test"]
    assert [int(row["index"]) for row in rows] == list(range(40))
    assert [int(row["label"]) for row in rows] == labels.tolist()  # the test split, in order
    task.eval()
    with torch.no_grad():
        images = torch.cat([batch[0] for batch in fashion.dataloader("test")])
        probabilities = task(images).softmax(1)
    confidence, predicted = probabilities.max(1)
    for row, p, c in zip(rows, predicted.tolist(), confidence.tolist(), strict=True):
        assert int(row["predicted"]) == p and float(row["confidence"]) == pytest.approx(c, abs=1e-6)
        assert row["predicted_name"] == fashion.classes[p]


def test_a_localizer_s_labels_are_named_as_the_data_counts_them(tmp_path: Path) -> None:
    data = ShapesDataModule("localization", image_size=48, num_test=6, batch_size=4)
    output = tmp_path / "boxes.csv"
    predicting_trainer(tmp_path, PredictionWriter(output)).predict(
        LocalizationTask("resnet20"), datamodule=data, return_predictions=False
    )
    rows = read_rows(output)
    assert len(rows) == 6
    for row in rows:  # 1-based labels, 0 the background: label i is classes[i - 1]
        assert 1 <= int(row["predicted"]) <= 3
        assert row["predicted_name"] == data.classes[int(row["predicted"]) - 1]


def test_a_task_that_writes_its_own_predictions_writes_them(
    tmp_path: Path, fashion: FashionMNISTDataModule
) -> None:
    output = tmp_path / "embeddings.npz"
    writer = PredictionWriter(output)
    predicting_trainer(tmp_path, writer).predict(
        AutoencoderTask(embedding_dim=8), datamodule=fashion, return_predictions=False
    )
    assert writer.summary == f"40 embeddings of size 8 written to {output}"
    with np.load(output) as arrays:
        assert arrays["embeddings"].shape == (40, 8) and list(arrays["classes"]) == list(fashion.classes)


def test_an_existing_file_is_refused_and_left_alone(tmp_path: Path, fashion: FashionMNISTDataModule) -> None:
    output = tmp_path / "preds.csv"
    output.write_text("mine\n")
    trainer = predicting_trainer(tmp_path, PredictionWriter(output))
    with pytest.raises(ZooError, match=r"preds\.csv exists; choose another file with --output$"):
        trainer.predict(ClassificationTask("lenet5", model_kwargs={"image_size": 28}), datamodule=fashion,
                        return_predictions=False)  # fmt: skip
    assert output.read_text() == "mine\n"


def test_the_shares_of_several_processes_are_put_back_in_the_data_s_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 5 samples on 2 processes: rank 0 predicted samples 0, 2, 4 and rank 1 samples 1, 3 (Lightning's prediction
    # sampler and zoo's in-memory loaders deal them out so), in batches of 2
    def batch(numbers: list[int]) -> dict[str, object]:
        return {
            "label": torch.tensor(numbers),
            "predicted": torch.tensor(numbers) * 10,
            "names": [f"n{n}" for n in numbers],
        }

    rank0 = [batch([0, 2]), batch([4])]

    def all_gather_object(
        out: list[object], mine: object
    ) -> None:  # rank 1's samples, one a batch, as it sends
        theirs = [
            {"label": torch.tensor([n]), "predicted": torch.tensor([10 * n]), "names": [f"n{n}"]}
            for n in (1, 3)
        ]
        out[0], out[1] = mine, theirs

    monkeypatch.setattr(torch.distributed, "all_gather_object", all_gather_object)
    merged = gather_predictions(rank0, rank=0, world_size=2)
    assert [int(b["label"]) for b in merged] == [0, 1, 2, 3, 4]
    assert [int(b["predicted"]) for b in merged] == [0, 10, 20, 30, 40]
    assert [b["names"] for b in merged] == [["n0"], ["n1"], ["n2"], ["n3"], ["n4"]]
