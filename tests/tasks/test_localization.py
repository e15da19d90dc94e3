"""The localization task: output shapes, a falling loss, the IoU metrics, bad options, the class-count check."""

from __future__ import annotations

import pytest
import torch

from zoo.data import FashionMNISTDataModule, ShapesDataModule
from zoo.errors import DataError, ZooError
from zoo.tasks import ClassificationTask, LocalizationTask
from zoo.tasks.localization import AccuracyAtIoU, MeanBoxIoU


def tiny_batch(count: int = 16) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    data = ShapesDataModule(
        "localization", image_size=48, num_train=count, num_val=1, num_test=1, batch_size=count
    )
    return next(iter(data.train_dataloader()))


def test_outputs_are_logits_and_pixel_boxes() -> None:
    task = LocalizationTask("resnet20", model_kwargs={})
    images, _ = tiny_batch(4)
    logits, boxes = task(images)
    assert logits.shape == (4, 3) and boxes.shape == (4, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 48


@pytest.mark.parametrize("box_loss", ["giou", "smooth_l1"])
def test_the_loss_falls_over_a_few_steps(box_loss: str) -> None:
    torch.manual_seed(0)
    task = LocalizationTask("resnet20", box_loss=box_loss, pool_size=2)  # type: ignore[arg-type]
    batch = tiny_batch()
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = task.step(batch, "train")["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_iou_metrics_against_a_hand_computed_example() -> None:
    true = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    # half-width overlap: intersection 50, union 100 + 100 - 50 = 150, IoU 1/3; identical boxes: IoU 1
    pred = torch.tensor([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    iou = MeanBoxIoU()
    iou.update(pred, true)
    assert iou.compute().item() == pytest.approx((1 / 3 + 1) / 2)
    found = AccuracyAtIoU(0.5)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    found.update(logits, torch.tensor([0, 2]), pred, true)  # first: class right, IoU 1/3; second: both right
    assert found.compute().item() == pytest.approx(0.5)
    found.update(logits, torch.tensor([0, 1]), true, true)  # IoU 1 but the second class is wrong
    assert found.compute().item() == pytest.approx(2 / 4)


def test_unknown_box_loss_is_refused() -> None:
    with pytest.raises(ZooError, match="box_loss"):
        LocalizationTask("resnet20", box_loss="l2")  # type: ignore[arg-type]


class _Trainer:
    def __init__(self, datamodule: object) -> None:
        self.datamodule = datamodule


def test_the_class_check_counts_the_background_for_localization_only() -> None:
    data = ShapesDataModule("localization", image_size=48)
    task = LocalizationTask("resnet20", num_classes=3)
    task._trainer = _Trainer(data)  # type: ignore[assignment]
    task.setup("fit")  # 3 objects + background = 4: agrees
    wrong = LocalizationTask("resnet20", num_classes=4)
    wrong._trainer = _Trainer(data)  # type: ignore[assignment]
    with pytest.raises(DataError, match=r"--model\.num_classes 3"):
        wrong.setup("fit")
    classifier = ClassificationTask("resnet20", num_classes=3, in_channels=3)
    classifier._trainer = _Trainer(FashionMNISTDataModule())  # type: ignore[assignment]
    with pytest.raises(DataError, match=r"--model\.num_classes 10$"):  # 10 classes, no background added
        classifier.setup("fit")
