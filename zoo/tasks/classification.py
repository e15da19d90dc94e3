"""Image classification: a registered network, cross-entropy, accuracy per stage, per-class accuracy at test."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from zoo.errors import ZooError
from zoo.models import create_model
from zoo.tasks.base import BaseTask, Stage

__all__ = ["ClassificationTask"]


class ClassificationTask(BaseTask):
    """Train any registered network to classify images.

    Args:
        model: a name from :func:`zoo.models.list_models`.
        num_classes: number of classes; must match the data.
        in_channels: channels of the input images (1 for the MNIST family, 3 for CIFAR).
        weights: a pretrained weights tag for the network, or None to start from scratch.
        model_kwargs: further keyword arguments for the network's builder (``image_size``, ``head``, ...).
        label_smoothing: cross-entropy label smoothing, 0 for none.

    Metrics: ``acc`` (top-1), ``acc_top5`` when there are more than 5 classes, ``loss``; at test also the
    accuracy of each class, logged as ``test_acc/<class>``. The best checkpoint is the one with the highest
    ``val_acc``.
    """

    num_classes: int
    monitor: ClassVar[str] = "val_acc"
    mode: ClassVar[Literal["min", "max"]] = "max"

    def __init__(
        self,
        model: str = "lenet5",
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self.model_name, self.num_classes, self.in_channels = model, num_classes, in_channels
        self.weights, self.model_kwargs = weights, dict(model_kwargs or {})
        self.label_smoothing = label_smoothing
        super().__init__()

    def configure_models(self) -> None:
        """Build the network from the registry."""
        try:
            self.net = create_model(
                self.model_name,
                num_classes=self.num_classes,
                in_channels=self.in_channels,
                weights=self.weights,
                **self.model_kwargs,
            )
        except ZooError:
            raise
        except (TypeError, ValueError) as error:  # a builder rejecting its arguments
            raise ZooError(f"cannot build model '{self.model_name}': {error}") from error

    def configure_metrics(self) -> MetricCollection:
        """Top-1 accuracy, and top-5 when there are more than five classes."""
        metrics: dict[str, Metric | MetricCollection] = {
            "acc": MulticlassAccuracy(self.num_classes, average="micro"),
        }
        if self.num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        self.class_accuracy = MulticlassAccuracy(self.num_classes, average="none")
        return MetricCollection(metrics)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` for images ``(B, C, H, W)``."""
        return self.net(images)

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> Tensor:
        """Cross-entropy of one batch; updates and logs the stage's metrics."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        metrics = self.metrics_of(stage)
        metrics.update(logits, labels)
        self.log(
            f"{stage}_loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, sync_dist=True
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "test")
        if stage == "test":
            self.class_accuracy.update(logits, labels)
        return loss

    def on_test_epoch_end(self) -> None:
        """Log the accuracy of every class, by name when the data has class names."""
        per_class = self.class_accuracy.compute()
        self.class_accuracy.reset()
        names = getattr(getattr(self.trainer, "datamodule", None), "classes", None)
        names = list(names) if names is not None and len(names) == len(per_class) else range(len(per_class))
        # already gathered from every rank by torchmetrics; sync_dist only averages identical values
        self.log_dict({f"test_acc/{n}": v for n, v in zip(names, per_class, strict=True)}, sync_dist=True)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Predicted class, its probability, and the true label of every image in the batch."""
        images, labels = batch
        probabilities = torch.softmax(self(images), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return {"label": labels, "predicted": predicted, "confidence": confidence}
