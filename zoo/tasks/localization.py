"""Classification plus localization: one object per image, its class and its box, from one backbone.

The "two losses" network of the localization literature (Sermanet et al. 2014, OverFeat; the CS231n
classification + localization set-up): a registered backbone's features, pooled, feed a class head
(cross-entropy) and a box head (smooth L1 or generalised IoU, Rezatofighi et al. 2019), summed with a weight.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchvision.ops import box_iou, generalized_box_iou_loss

from zoo.data.base import TaskKind
from zoo.errors import ZooError
from zoo.models.base import Backbone
from zoo.tasks.base import BaseTask, Stage, build_network
from zoo.tasks.outputs import LocalizationOutputs

__all__ = ["AccuracyAtIoU", "BoxLoss", "LocalizationTask", "MeanBoxIoU", "paired_iou"]

BoxLoss = Literal["smooth_l1", "giou"]


def paired_iou(pred_boxes: Tensor, true_boxes: Tensor) -> Tensor:
    """IoU of each predicted box with its own true box: ``(B,)`` from two ``(B, 4)`` ``XYXY`` tensors."""
    return box_iou(pred_boxes, true_boxes).diagonal()


class MeanBoxIoU(MeanMetric):
    """Mean IoU of every predicted box with the true box of the same image."""

    def update(self, pred_boxes: Tensor, true_boxes: Tensor) -> None:  # type: ignore[override]
        """Add a batch of ``(B, 4)`` ``XYXY`` boxes, predicted and true, in the same units."""
        super().update(paired_iou(pred_boxes, true_boxes))


class AccuracyAtIoU(MeanMetric):
    """Fraction of images whose class is right and whose predicted box overlaps the true one by ``threshold``.

    Args:
        threshold: the least IoU that counts as found (0.5, as in PASCAL VOC).
    """

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def update(  # type: ignore[override]
        self, preds: Tensor, target: Tensor, pred_boxes: Tensor, true_boxes: Tensor
    ) -> None:
        """Add a batch: class logits ``(B, C)``, 0-based labels ``(B,)`` and ``(B, 4)`` boxes."""
        hit = (preds.argmax(1) == target) & (paired_iou(pred_boxes, true_boxes) >= self.threshold)
        super().update(hit.float())


class LocalizationTask(BaseTask):
    """Classify the one object of an image and regress its box, from a registered backbone.

    Batches are ``(images (B, 3, H, W), {"labels": (B,) 1-based, "boxes": (B, 4) XYXY pixels})``, as
    :class:`zoo.data.ShapesDataModule` gives in ``mode="localization"``. The task predicts 0-based classes and
    boxes normalised to 0..1 of the image size; :meth:`forward` gives them in pixels.

    Args:
        model: a name from :func:`zoo.models.list_models`; it must be a :class:`zoo.models.base.Backbone`.
        num_classes: the object classes, background not counted (the data's ``num_classes`` counts it).
        in_channels: channels of the input images.
        model_kwargs: further keyword arguments for the network's builder (``image_size``, ``head``, ...).
        box_loss: ``"smooth_l1"`` on the normalised corners, or ``"giou"`` (generalised IoU loss).
        box_weight: weight of the box loss added to the cross-entropy.
        pool_size: side of the average-pooled feature map the heads see; 1 is global average pooling.

    Metrics: ``acc`` (class), ``iou`` (mean IoU of predicted and true boxes), ``acc_iou50`` (class right and
    IoU at least 0.5), ``loss``, ``cls_loss``, ``box_loss``. The best checkpoint has the highest ``val_acc_iou50``.
    Validation and test steps return :class:`~zoo.tasks.outputs.LocalizationOutputs`.
    """

    kind: ClassVar[TaskKind] = "localization"
    num_classes: int
    monitor: ClassVar[str] = "val_acc_iou50"
    mode: ClassVar[Literal["min", "max"]] = "max"
    data_counts_background: ClassVar[bool] = True

    def __init__(
        self,
        model: str = "resnet20",
        *,
        num_classes: int = 3,
        in_channels: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        box_loss: BoxLoss = "giou",
        box_weight: float = 1.0,
        pool_size: int = 1,
    ) -> None:
        if box_loss not in get_args(BoxLoss):
            raise ZooError(f"box_loss must be one of {', '.join(get_args(BoxLoss))}, got {box_loss!r}")
        if num_classes < 1 or box_weight < 0 or pool_size < 1:
            raise ZooError(
                f"need num_classes >= 1, box_weight >= 0 and pool_size >= 1, got {num_classes}, "
                f"{box_weight} and {pool_size}"
            )
        self.model_name, self.num_classes, self.in_channels = model, num_classes, in_channels
        self.model_kwargs = dict(model_kwargs or {})
        self.box_loss: BoxLoss = box_loss
        self.box_weight, self.pool_size = box_weight, pool_size
        super().__init__()

    def configure_models(self) -> None:
        """The backbone from the registry, its pooling, and the two heads."""
        net = build_network(
            self.model_name, num_classes=self.num_classes, in_channels=self.in_channels, **self.model_kwargs
        )
        if not isinstance(net, Backbone):
            raise ZooError(
                f"model '{self.model_name}' has no forward_features: localization needs a backbone"
            )
        # the network's own classifier is never used: drop it, so every parameter gets a gradient (DDP needs that)
        setattr(net, net.head_name, nn.Identity())
        self.backbone = net
        self.pool = nn.AdaptiveAvgPool2d(self.pool_size)
        features = net.num_features * self.pool_size**2
        self.class_head = nn.Linear(features, self.num_classes)
        self.box_head = nn.Linear(features, 4)

    def configure_metrics(self) -> MetricCollection:
        """Class accuracy, mean box IoU and accuracy at IoU 0.5."""
        metrics: dict[str, Metric | MetricCollection] = {
            "acc": MulticlassAccuracy(self.num_classes, average="micro"),
            "iou": MeanBoxIoU(),
            "acc_iou50": AccuracyAtIoU(0.5),
        }
        # no compute groups: two means with equal first values (all zero at the start) would be merged for good
        return MetricCollection(metrics, compute_groups=False)

    def predict_normalised(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits ``(B, num_classes)`` and ``XYXY`` boxes ``(B, 4)`` in 0..1 of the image size."""
        features = torch.flatten(self.pool(self.backbone.forward_features(images)), 1)
        corners = torch.sigmoid(self.box_head(features))
        # sorting each axis's pair keeps x1 <= x2 and y1 <= y2 whatever the head outputs
        x1, x2 = torch.minimum(corners[:, 0], corners[:, 2]), torch.maximum(corners[:, 0], corners[:, 2])
        y1, y2 = torch.minimum(corners[:, 1], corners[:, 3]), torch.maximum(corners[:, 1], corners[:, 3])
        return self.class_head(features), torch.stack([x1, y1, x2, y2], 1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits ``(B, num_classes)`` (0-based) and ``XYXY`` boxes ``(B, 4)`` in pixels."""
        logits, boxes = self.predict_normalised(images)
        return logits, boxes * _scale(images)

    def step(self, batch: tuple[Tensor, dict[str, Tensor]], stage: Stage) -> LocalizationOutputs:
        """Cross-entropy plus ``box_weight`` times the box loss; updates and logs the stage's metrics."""
        images, target = batch
        labels = target["labels"] - 1  # the data counts the background as 0
        scale = _scale(images)
        true_boxes = target["boxes"] / scale
        logits, boxes = self.predict_normalised(images)
        cls_loss = F.cross_entropy(logits, labels)
        if self.box_loss == "giou":
            box_loss = generalized_box_iou_loss(boxes, true_boxes, reduction="mean")
        else:
            box_loss = F.smooth_l1_loss(boxes, true_boxes, beta=0.05)
        loss = cls_loss + self.box_weight * box_loss
        pixel_boxes = boxes.detach() * scale
        self.update_metrics(
            stage, preds=logits, target=labels, pred_boxes=pixel_boxes, true_boxes=target["boxes"]
        )
        self.log_loss(stage, loss, len(labels))
        self.log_loss(stage, cls_loss, len(labels), name="cls_loss")
        self.log_loss(stage, box_loss, len(labels), name="box_loss")
        return {
            "loss": loss,
            "logits": logits,
            "target": labels,
            "boxes": pixel_boxes,
            "target_boxes": target["boxes"],
        }

    def predict_step(self, batch: tuple[Tensor, dict[str, Tensor]], batch_idx: int) -> dict[str, Tensor]:
        """Predicted class (1-based, as the data counts), its probability, box in pixels, and the truth."""
        images, target = batch
        logits, boxes = self(images)
        confidence, predicted = torch.softmax(logits, dim=1).max(dim=1)
        return {
            "label": target["labels"],
            "predicted": predicted + 1,
            "confidence": confidence,
            "box": boxes,
            "true_box": target["boxes"],
        }


def _scale(images: Tensor) -> Tensor:
    """``(4,)`` factors from 0..1 boxes to pixels: width, height, width, height of ``images (B, C, H, W)``."""
    height, width = images.shape[-2:]
    return images.new_tensor([width, height, width, height])
