"""Object detection: a torchvision-style detector from the registry (Faster R-CNN), trained on its own losses and
evaluated with COCO-style mean average precision.

Batches are two lists (:func:`zoo.data.targets.collate_detection`): images ``(3, H, W)`` float in 0..1, and target
dicts with ``boxes`` ``(N, 4)`` ``XYXY`` in pixels and 1-based ``labels`` ``(N,)`` (0 is the background). The
detector resizes and normalises the images itself. mAP is torchmetrics' ``MeanAveragePrecision`` on the
``pycocotools`` backend (COCO's own evaluation: 101-point interpolated precision, IoU thresholds 0.50:0.95); its
state is synchronised across processes before it is computed, so under DDP every rank reports the mAP of the whole
validation or test set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from zoo.data.base import TaskKind
from zoo.errors import ZooError
from zoo.tasks.base import BaseTask, Stage, build_network
from zoo.tasks.outputs import DetectionOutputs, detached

__all__ = ["LOGGED_MAP", "DetectionTask", "detection_metrics"]

Images = list[Tensor]
Targets = list[dict[str, Tensor]]
Detections = list[dict[str, Tensor]]

#: the values of ``MeanAveragePrecision`` that are logged per stage (``val_map``, ``val_map_50``...)
LOGGED_MAP: tuple[str, ...] = ("map", "map_50", "map_75", "mar_100")


def detection_metrics() -> MetricCollection:
    """The metrics of one stage: COCO-style box mAP on ``XYXY`` pixel boxes (pycocotools' evaluation)."""
    metrics: dict[str, Metric | MetricCollection] = {
        "map": MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools"),
    }
    return MetricCollection(metrics)


class DetectionTask(BaseTask):
    """Train a registered detector (``fasterrcnn_*``) on boxes and labels; report COCO-style mAP.

    Args:
        model: a detector from :func:`zoo.models.list_models` (``fasterrcnn_resnet18_fpn``, ``fasterrcnn_vgg16``...).
        num_classes: object classes plus the background, torchvision's count; equal to the data's ``num_classes``
            (shapes: 4, VOC: 21, COCO-format: categories + 1).
        in_channels: channels of the images.
        weights: weights of the whole detector to start from: a tag such as ``"coco"``, a zoo checkpoint or a
            ``wandb:`` reference. Trained on another number of classes, they get a fresh box predictor for
            ``num_classes`` (torchvision's fine-tuning recipe); everything else is kept.
        model_kwargs: further options of the builder: ``weights_backbone`` (``"imagenet"``),
            ``trainable_backbone_layers``, ``min_size``, ``max_size``, ``anchor_sizes``, ``rpn_*``, ``box_*``...

    Training logs ``train_loss`` (the sum) and its parts ``train_loss_classifier``, ``train_loss_box_reg``,
    ``train_loss_objectness``, ``train_loss_rpn_box_reg``. Validation and test run the detector in evaluation
    mode (where torchvision's detectors give detections, not losses) and log ``map`` (IoU 0.50:0.95), ``map_50``,
    ``map_75`` and ``mar_100``, e.g. ``val_map_50``; the best checkpoint has the highest ``val_map_50``, the
    PASCAL VOC criterion.

    In evaluation mode ``task(images)`` (a list of ``(3, H, W)`` images) returns one dict per image: ``boxes``
    ``(N, 4)`` ``XYXY`` in pixels, ``labels`` ``(N,)`` 1-based, ``scores`` ``(N,)``, best first. Validation and
    test steps return these detections with the truth, :class:`~zoo.tasks.outputs.DetectionOutputs`.
    """

    kind: ClassVar[TaskKind] = "detection"
    num_classes: int
    monitor: ClassVar[str] = "val_map_50"
    mode: ClassVar[Literal["min", "max"]] = "max"
    #: what ``python -m zoo.predict`` writes by default: a JSON file of detections
    predictions_suffix: ClassVar[str] = ".json"

    def __init__(
        self,
        model: str = "fasterrcnn_resnet18_fpn",
        *,
        num_classes: int = 4,
        in_channels: int = 3,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if num_classes < 2:
            raise ZooError(
                f"num_classes counts the background too (torchvision's convention), so it is at least 2, "
                f"got {num_classes}"
            )
        self.model_name, self.num_classes, self.in_channels = model, num_classes, in_channels
        self.weights, self.model_kwargs = weights, dict(model_kwargs or {})
        super().__init__()

    def configure_models(self) -> None:
        """The detector from the registry; a fresh box predictor when its weights have other classes."""
        # weights bring their own classes; a predictor for ours replaces theirs below
        num_classes = None if self.weights is not None else self.num_classes
        net = build_network(
            self.model_name,
            num_classes=num_classes,
            in_channels=self.in_channels,
            weights=self.weights,
            **self.model_kwargs,
        )
        if not isinstance(net, GeneralizedRCNN):
            raise ZooError(
                f"model '{self.model_name}' is not a detector; detection takes one of "
                "zoo.models.list_models('fasterrcnn_*')"
            )
        predictor = net.roi_heads.box_predictor
        if isinstance(predictor, FastRCNNPredictor) and predictor.cls_score.out_features != self.num_classes:
            net.roi_heads.box_predictor = FastRCNNPredictor(predictor.cls_score.in_features, self.num_classes)
        self.net = net

    def configure_metrics(self) -> MetricCollection:
        """COCO-style box mAP (:func:`detection_metrics`)."""
        return detection_metrics()

    def forward(self, images: Images | Tensor) -> Detections:
        """Detections of each image (evaluation mode): ``boxes`` ``XYXY`` pixels, 1-based ``labels``, ``scores``."""
        return self.net(images)

    def step(self, batch: tuple[Images, Targets], stage: Stage) -> Mapping[str, Tensor]:
        """The training loss of one batch (the sum of the detector's four losses), logged with its parts.

        Validation and test do not call this: a torchvision detector gives detections, not losses, in evaluation
        mode (:meth:`evaluate`).
        """
        images, targets = batch
        losses: dict[str, Tensor] = self.net(_plain(images), [_boxes_and_labels(t) for t in targets])
        loss = torch.stack(list(losses.values())).sum()
        size = len(images)
        # summed on the device and logged once an epoch (train_loss_epoch, train_loss_classifier, ...): logged every
        # step, the progress bar would read the loss on the host every step (BaseTask.log_loss)
        self.log_loss(stage, loss, size)
        for name, value in losses.items():
            self.log_loss(stage, value, size, name=name)
        return {"loss": loss}

    def evaluate(self, batch: tuple[Images, Targets], stage: Stage) -> DetectionOutputs:
        """Detect the objects of one batch and add them, with the truth, to the stage's mAP."""
        images, targets = batch
        detections = self(_plain(images))
        truth = [_boxes_and_labels(t) for t in targets]
        self.metrics_of(stage).update(detections, truth)
        return {"preds": detections, "target": truth}

    def validation_step(self, batch: tuple[Images, Targets], batch_idx: int) -> DetectionOutputs:
        """Detections added to the validation mAP; returned, detached, with the truth for the callbacks."""
        return detached(self.evaluate(batch, "val"))

    def test_step(self, batch: tuple[Images, Targets], batch_idx: int) -> DetectionOutputs:
        """Detections added to the test mAP; returned, detached, with the truth for the callbacks."""
        return detached(self.evaluate(batch, "test"))

    def log_epoch_metrics(self, stage: Stage) -> None:
        """Log the stage's mAP values (:data:`LOGGED_MAP`) over the whole epoch, then reset the metric.

        ``MeanAveragePrecision`` also returns per-class tensors, which are not scalars to log, so only the
        :data:`LOGGED_MAP` values are. Training, whose detector gives losses, leaves its metric untouched and logs
        the epoch's mean losses.
        """
        if stage == "train":
            super().log_epoch_metrics(stage)
            return
        metrics = self.metrics_of(stage)
        if not any(metric.update_called for metric in metrics.values(copy_state=False)):
            return
        values = metrics.compute()  # gathered from every process by torchmetrics first
        metrics.reset()
        # every rank holds the same values; sync_dist only averages identical numbers
        logged = {f"{stage}_{k}": values[f"{stage}_{k}"] for k in LOGGED_MAP}
        self.log_dict(logged, prog_bar=stage != "test", sync_dist=True)

    def predict_step(self, batch: tuple[Images, Targets | Tensor], batch_idx: int) -> dict[str, Any]:
        """The detections of every image of the batch, on the CPU; for unlabelled image files
        (:class:`~zoo.data.photos.PhotosDataModule`, whose batches give each image's number), the numbers as
        ``label``."""
        images, targets = batch
        found = self(_plain(images))
        out: dict[str, Any] = {"detections": [{k: v.cpu() for k, v in d.items()} for d in found]}
        if isinstance(targets, Tensor):
            out["label"] = targets.cpu()
        return out

    def write_predictions(self, batches: list[dict[str, Detections]], output: Path) -> str:
        """Write the detections of ``python -m zoo.predict`` as JSON: one entry per image, in the data's order.

        Each entry is ``{"image": index, "boxes": [[x1, y1, x2, y2], ...], "labels": [...], "scores": [...]}``,
        boxes in pixels of the image as the DataModule gave it, labels 1-based.
        """
        images = [
            {"image": index, **{key: d[key].tolist() for key in ("boxes", "labels", "scores")}}
            for index, d in enumerate(d for batch in batches for d in batch["detections"])
        ]
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "x") as file:
            json.dump(images, file)
        return f"detections of {len(images)} images written to {output}"


def _plain(images: Images | Tensor) -> Images:
    """Images as plain tensors (a DataModule gives ``tv_tensors.Image``), the type torchvision's detectors expect."""
    return [image.as_subclass(Tensor) for image in images]


def _boxes_and_labels(target: dict[str, Any]) -> dict[str, Tensor]:
    """What the detector and the metric need of a target: its boxes as a plain float tensor and its labels.

    The masks of the shapes set (and of COCO with ``masks=True``) are left out, or torchvision's transform would
    resize them at every step for nothing.
    """
    return {"boxes": target["boxes"].as_subclass(Tensor).float(), "labels": target["labels"]}
