"""Semantic segmentation: a class for every pixel, from a registered fully convolutional network.

Long et al., "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015; the loss and metrics are
those of torchvision's segmentation reference: per-pixel cross-entropy that ignores the pixels marked 255
(VOC's object borders, padding), plus 0.5 times the auxiliary head's when the network has one; mean IoU over
the classes (the PASCAL VOC measure) and pixel accuracy, both from the confusion matrix of the whole split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, cast, get_args

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from zoo.data.base import TaskKind
from zoo.data.targets import IGNORE_INDEX
from zoo.errors import DataError, ZooError
from zoo.models.base import Backbone
from zoo.tasks.base import BaseTask, Stage, build_network, datamodule_of
from zoo.tasks.outputs import SegmentationOutputs

__all__ = ["SegmentationLoss", "SegmentationTask", "pixel_cross_entropy", "voc_palette"]

SegmentationLoss = Literal["ce"]


def pixel_cross_entropy(logits: Tensor, masks: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean cross-entropy over the pixels whose class is known.

    Args:
        logits: ``(B, C, H, W)`` class scores.
        masks: ``(B, H, W)`` ``int64`` classes, ``ignore_index`` where unknown.
        ignore_index: the mask value that counts for nothing.

    Returns:
        The mean over the pixels not ignored; 0 (with a gradient) when every pixel is ignored, where
        ``F.cross_entropy`` would give NaN.
    """
    total = F.cross_entropy(logits, masks, ignore_index=ignore_index, reduction="sum")
    return total / (masks != ignore_index).sum().clamp_min(1)


def voc_palette() -> list[int]:
    """PASCAL VOC's 256-colour palette (flat RGB), as its devkit's ``labelcolormap`` makes it: 0 black, 255
    cream, every class a distinct colour."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):  # the bits of the index, spread over the three channels' high bits
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [red, green, blue]
    return palette


class SegmentationTask(BaseTask):
    """Train a registered segmentation network (``fcn*``) to give every pixel a class.

    Batches are ``(images (B, 3, H, W) float 0..1, masks (B, H, W) int64)``, 0 the background and
    ``ignore_index`` (255) where no class counts, as :class:`zoo.data.ShapesDataModule` (``mode="segmentation"``)
    and :class:`zoo.data.VOCSegmentationDataModule` give them. ``task(images)`` returns logits
    ``(B, num_classes, H, W)`` at the input's size, channel 0 the background.

    Args:
        model: a segmentation network from :func:`zoo.models.list_models` (``"fcn*"``).
        num_classes: classes, the background counted (torchvision's convention): 21 for VOC, 4 for the shapes;
            must equal the data's ``num_classes``.
        in_channels: channels of the input images.
        model_kwargs: further keyword arguments for the network's builder: ``weights_backbone="imagenet"``
            (start from the backbone's ImageNet weights), ``aux_loss`` (``fcn_resnet50``), ``weights``,
            ``dropout`` (VGG FCNs).
        loss: ``"ce"``, per-pixel cross-entropy, averaged over the pixels not ignored.
        aux_weight: weight of the auxiliary head's loss in training, when the network has one (0.5, as
            torchvision's reference).
        ignore_index: the mask value that counts in neither the loss nor the metrics.

    Metrics: ``miou`` (mean over the classes present of intersection over union, from the split's confusion
    matrix), ``pixel_acc`` (share of the counted pixels classified right), ``loss`` (the main head's
    cross-entropy; in training plus the auxiliary term); at test also the IoU of every class, logged as
    ``test_iou/<class>`` ("background" first, then the data's ``classes``; NaN for a class in neither the
    predictions nor the truth). The best checkpoint has the highest ``val_miou``. Validation and test steps return
    :class:`~zoo.tasks.outputs.SegmentationOutputs`.
    """

    kind: ClassVar[TaskKind] = "segmentation"
    num_classes: int
    monitor: ClassVar[str] = "val_miou"
    mode: ClassVar[Literal["min", "max"]] = "max"
    #: masks are big (a VOC batch is millions of pixels): update the metrics every batch, keeping none
    metric_batches: ClassVar[int] = 1
    #: ``python -m zoo.predict`` writes a folder of PNG masks (see :meth:`write_predictions`)
    predictions_suffix: ClassVar[str] = ""

    def __init__(
        self,
        model: str = "fcn8s_resnet18",
        *,
        num_classes: int = 21,
        in_channels: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        loss: SegmentationLoss = "ce",
        aux_weight: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if loss not in get_args(SegmentationLoss):
            raise ZooError(f"loss must be one of {', '.join(get_args(SegmentationLoss))}, got {loss!r}")
        if num_classes < 2:
            raise ZooError(
                f"num_classes counts the background and at least one class: need >= 2, got {num_classes}"
            )
        if aux_weight < 0:
            raise ZooError(f"aux_weight must be 0 or more, got {aux_weight}")
        if 0 <= ignore_index < num_classes:
            raise ZooError(
                f"ignore_index {ignore_index} is one of the {num_classes} classes; use a value outside 0..{num_classes - 1}"
            )
        self.model_name, self.num_classes, self.in_channels = model, num_classes, in_channels
        self.model_kwargs = dict(model_kwargs or {})
        self.loss: SegmentationLoss = loss
        self.aux_weight, self.ignore_index = aux_weight, ignore_index
        super().__init__()

    def configure_models(self) -> None:
        """The network from the registry; it must give per-pixel logits, not one score per image."""
        net = build_network(
            self.model_name, num_classes=self.num_classes, in_channels=self.in_channels, **self.model_kwargs
        )
        if isinstance(net, Backbone):
            raise ZooError(
                f"model '{self.model_name}' is an image classifier; segmentation needs a network that scores "
                "every pixel, e.g. fcn8s_resnet18 (see zoo.models.list_models('fcn*'))"
            )
        self.net = net
        self.has_aux = bool(getattr(net, "has_aux", False))

    def configure_metrics(self) -> MetricCollection:
        """Mean IoU and pixel accuracy; the per-class IoU of the test split is kept aside."""
        metrics: dict[str, Metric | MetricCollection] = {
            "miou": MulticlassJaccardIndex(self.num_classes, average="macro", ignore_index=self.ignore_index),
            "pixel_acc": MulticlassAccuracy(
                self.num_classes, average="micro", ignore_index=self.ignore_index
            ),
        }
        self.class_iou = MulticlassJaccardIndex(
            self.num_classes, average="none", ignore_index=self.ignore_index, zero_division=float("nan")
        )
        return MetricCollection(metrics)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)`` in 0..1."""
        return self.net(images)

    def _check_masks(self, masks: Tensor, stage: Stage) -> Tensor:
        """``masks``, checked: a class the network cannot output would otherwise stop the run deep inside the loss,
        on the GPU. Evaluation refuses such a mask at once; training notes it on the device for the next step check
        (:meth:`~zoo.tasks.base.BaseTask.check_steps`), which raises, and ignores its pixels until then: reading
        the check on the host every step would stop the device every step."""
        bad = (masks >= self.num_classes) & (masks != self.ignore_index) | (masks < 0)
        message = (
            f"a mask holds class {{value}}, outside 0..{self.num_classes - 1} and not the ignore index "
            f"{self.ignore_index}; check --model.num_classes against the data"
        )
        if stage != "train":
            if bool(bad.any()):
                raise DataError(message.format(value=int(masks[bad][0])))
            return masks
        # the largest bad class (or the largest negative one), without reading the mask on the host
        value = torch.where(bad, masks, torch.iinfo(masks.dtype).min).amax()
        self.step_checks.keep_fault(bad.any(), value, message)
        return torch.where(bad, self.ignore_index, masks)

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> SegmentationOutputs:
        """Cross-entropy of one batch (plus the auxiliary term in training); updates and logs the metrics."""
        images, masks = batch
        masks = self._check_masks(masks, stage)
        if self.has_aux and stage == "train":
            logits, aux = cast(Any, self.net).forward_aux(images)
            loss = pixel_cross_entropy(logits, masks, self.ignore_index)
            loss = loss + self.aux_weight * pixel_cross_entropy(aux, masks, self.ignore_index)
        else:
            logits = self(images)
            loss = pixel_cross_entropy(logits, masks, self.ignore_index)
        predicted = logits.detach().argmax(1)
        self.update_metrics(stage, predicted, masks)
        self.log_loss(stage, loss, len(images))
        if stage == "test":
            self.class_iou.update(predicted, masks)
        # the logits (num_classes times the masks' size) stay here: the predicted classes say what callbacks need
        return {"loss": loss, "preds": predicted, "target": masks}

    def class_names(self) -> list[str]:
        """``"background"`` and the data's ``classes``, or the class numbers when the data names none."""
        data = datamodule_of(self._trainer)
        if data is not None and len(data.classes) + 1 == self.num_classes:
            return ["background", *data.classes]
        return [str(index) for index in range(self.num_classes)]

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and the IoU of every class, by name."""
        super().on_test_epoch_end()
        per_class = self.class_iou.compute()
        self.class_iou.reset()
        # already gathered from every rank by torchmetrics; sync_dist only averages identical values
        self.log_dict(
            {f"test_iou/{name}": iou for name, iou in zip(self.class_names(), per_class, strict=True)},
            sync_dist=True,
        )

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """The predicted class of every pixel ``(B, H, W)``, its probability, and the true mask when given."""
        images, masks = batch if isinstance(batch, list | tuple) else (batch, None)
        probabilities = torch.softmax(self(images), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        out = {"predicted": predicted, "confidence": confidence}
        if masks is not None:
            out["label"] = masks
        return out

    def write_predictions(self, batches: list[dict[str, Tensor]], output: Path) -> str:
        """Write each predicted mask as a palette PNG of class indices (VOC's colours) into the folder ``output``.

        Returns:
            The line ``python -m zoo.predict`` prints.
        """
        output.mkdir(parents=True, exist_ok=False)
        palette = voc_palette()
        count = 0
        for batch in batches:
            for mask in batch["predicted"].to(torch.uint8).cpu().numpy():
                png = Image.fromarray(np.ascontiguousarray(mask), mode="P")
                png.putpalette(palette)
                png.save(output / f"{count:06d}.png")
                count += 1
        return f"{count} masks written to {output} (palette PNGs: pixel value = class, 0 background)"
