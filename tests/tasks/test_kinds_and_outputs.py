"""The tasks' written interfaces: each declares its kind, refuses data of another kind in one line, and its
validation and test steps return their outputs, detached, as :mod:`zoo.tasks.outputs` describes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import lightning as L
import pytest
import torch
from conftest import make_idx_dataset
from torch import Tensor

import zoo.tasks
from zoo.data import FashionMNISTDataModule, ShapesDataModule, TaskKind
from zoo.errors import DataError
from zoo.tasks import (
    AutoencoderTask,
    BaseTask,
    ClassificationTask,
    DetectionTask,
    LocalizationTask,
    SegmentationTask,
    StyleTransferTask,
)

TASKS = [
    task
    for task in (getattr(zoo.tasks, name) for name in zoo.tasks.__all__)
    if isinstance(task, type) and issubclass(task, BaseTask) and task is not BaseTask
]


def test_every_task_class_declares_its_own_kind() -> None:
    assert len(TASKS) == 6
    for task in TASKS:
        assert "kind" in vars(task), f"{task.__name__} inherits its kind"
        assert task.kind in get_args(TaskKind), task.__name__
    assert {task.kind for task in TASKS} == set(get_args(TaskKind))  # one task per kind


def test_the_default_predictions_file_is_a_csv_unless_a_task_writes_its_own() -> None:
    suffixes = {task.__name__: task.predictions_suffix for task in TASKS}
    assert suffixes == {
        "AutoencoderTask": ".npz",
        "ClassificationTask": ".csv",
        "DetectionTask": ".json",
        "LocalizationTask": ".csv",
        "SegmentationTask": "",
        "StyleTransferTask": "",
    }


def quiet_trainer(root: Path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, default_root_dir=str(root), enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)  # fmt: skip


@pytest.mark.parametrize(
    ("make_task", "mode", "message"),
    [
        (lambda: ClassificationTask("resnet20", num_classes=4, in_channels=3), "segmentation",
         "ClassificationTask needs classification data, but ShapesDataModule serves segmentation; "
         "choose a DataModule for classification"),
        (lambda: LocalizationTask("resnet20"), "detection",
         "LocalizationTask needs localization data, but ShapesDataModule serves detection; "
         "choose a DataModule for localization"),
        (lambda: AutoencoderTask(in_channels=3), "localization",
         "AutoencoderTask needs autoencoder data, but ShapesDataModule serves localization; "
         "choose a DataModule for autoencoder"),
    ],
)  # fmt: skip
def test_a_task_refuses_data_of_another_kind_in_one_line(
    make_task: Callable[[], BaseTask], mode: Any, message: str, tmp_path: Path
) -> None:
    data = ShapesDataModule(mode, image_size=48, num_val=2, batch_size=2)
    with pytest.raises(DataError) as error:
        quiet_trainer(tmp_path).validate(make_task(), datamodule=data, verbose=False)
    assert str(error.value) == message


class _Trainer:
    def __init__(self, datamodule: object) -> None:
        self.datamodule = datamodule


class PlainData(L.LightningDataModule):
    """Not a ZooDataModule: whatever it holds, it declares nothing a task may read."""

    kinds = frozenset({"segmentation"})
    num_classes = 3
    image_shape = (3, 8, 8)


def test_a_plain_datamodule_is_not_checked_and_a_zoo_one_of_the_right_kind_passes(tmp_path: Path) -> None:
    task = ClassificationTask("mlp", num_classes=10, model_kwargs={"image_size": 28, "hidden": 4})
    task._trainer = _Trainer(PlainData())  # type: ignore[assignment]
    task.setup("fit")  # another kind and another class count, yet no error: none of it is read
    assert task.example_input_array is None  # nor its image shape
    data = FashionMNISTDataModule(str(make_idx_dataset(tmp_path, n_train=30, n_test=10)), val_size=0)
    data.setup()
    task._trainer = _Trainer(data)  # type: ignore[assignment]
    task.setup("fit")  # classification with 10 classes: checked, and it passes to the end of the checks
    assert task.example_input_array is not None and task.example_input_array.shape == (1, 1, 28, 28)


def _quiet(task: BaseTask) -> BaseTask:
    task.log = task.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign,assignment]
    return task.eval()


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


def _shapes_batch(mode: Any, count: int = 2) -> Any:
    data = ShapesDataModule(mode, image_size=48, num_train=count, num_val=1, num_test=1, batch_size=count)
    return next(iter(data.train_dataloader()))


def test_classification_steps_return_logits_and_target() -> None:
    task = _quiet(ClassificationTask("mlp", model_kwargs={"image_size": 8, "hidden": 16}))
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 9, 3])
    with torch.enable_grad():
        outputs = task.validation_step((images, labels), 0)
        loss = task.training_step((images, labels), 0)
    assert set(outputs) == {"loss", "logits", "target"}
    assert not any(t.requires_grad for t in _tensors(outputs))
    assert loss.requires_grad  # training returns the loss with its gradient
    with torch.no_grad():
        torch.testing.assert_close(outputs["logits"], task(images))
    assert torch.equal(outputs["target"], labels) and outputs["loss"].ndim == 0
    assert set(task.test_step((images, labels), 0)) == {"loss", "logits", "target"}


def test_localization_steps_return_0_based_classes_and_pixel_boxes() -> None:
    task = _quiet(LocalizationTask("resnet20"))
    images, target = _shapes_batch("localization")
    with torch.enable_grad():
        outputs = task.validation_step((images, target), 0)
    assert set(outputs) == {"loss", "logits", "target", "boxes", "target_boxes"}
    assert not any(t.requires_grad for t in _tensors(outputs))
    assert torch.equal(outputs["target"], target["labels"] - 1) and outputs["logits"].shape == (2, 3)
    _, boxes = task(images)
    torch.testing.assert_close(outputs["boxes"], boxes.detach())  # pixels, as forward gives them
    assert torch.equal(outputs["target_boxes"], target["boxes"])


def test_segmentation_steps_return_the_predicted_class_of_every_pixel() -> None:
    task = _quiet(SegmentationTask("fcn8s_resnet18", num_classes=4))
    images, masks = _shapes_batch("segmentation")
    with torch.enable_grad():
        outputs = task.validation_step((images, masks), 0)
    assert set(outputs) == {"loss", "preds", "target"}
    assert not any(t.requires_grad for t in _tensors(outputs))
    assert outputs["preds"].shape == masks.shape and outputs["preds"].dtype == torch.int64
    with torch.no_grad():
        assert torch.equal(outputs["preds"], task(images).argmax(1))


def test_autoencoder_steps_return_reconstructions_and_pixels() -> None:
    task = _quiet(AutoencoderTask(embedding_dim=8))
    images = torch.randn(2, 1, 28, 28)
    with torch.enable_grad():
        outputs = task.test_step((images, torch.tensor([1, 2])), 0)
    assert set(outputs) == {"loss", "preds", "target"}
    assert not any(t.requires_grad for t in _tensors(outputs))
    assert outputs["preds"].shape == outputs["target"].shape == images.shape
    assert outputs["preds"].min() >= 0 and outputs["preds"].max() <= 1


def test_detection_steps_return_the_detections_and_the_truth() -> None:
    from conftest import DETECTION_SMALL

    task = _quiet(DetectionTask("fasterrcnn_resnet18_fpn", num_classes=4, model_kwargs=DETECTION_SMALL))
    images, targets = _shapes_batch("detection")
    outputs = task.validation_step((images, targets), 0)
    assert set(outputs) == {"preds", "target"} and len(outputs["preds"]) == len(outputs["target"]) == 2
    assert all({"boxes", "labels", "scores"} <= set(found) for found in outputs["preds"])
    assert not any(t.requires_grad for t in _tensors(outputs))
    for truth, target in zip(outputs["target"], targets, strict=True):
        assert torch.equal(truth["labels"], target["labels"]) and torch.equal(truth["boxes"], target["boxes"])


def test_style_transfer_steps_return_the_stylised_images(tmp_path: Path) -> None:
    from PIL import Image

    style = tmp_path / "style.png"
    Image.new("RGB", (16, 16), (200, 40, 40)).save(style)
    task = _quiet(StyleTransferTask(str(style), style_size=16, loss_weights=None, allow_random=True))
    images = torch.rand(1, 3, 16, 16)
    outputs = task.validation_step((images, ["a"]), 0)
    assert set(outputs) == {"loss", "preds"} and outputs["preds"].shape == images.shape
    assert not any(t.requires_grad for t in _tensors(outputs))
