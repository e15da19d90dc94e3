"""Predicted boxes and masks drawn over the images, next to the true ones, for localization, detection and
segmentation.

The callback reads the kind of task from the batches it sees (:func:`batch_kind`), keeps the first images of
the validation or test epoch, runs the model on them once at the end of the epoch and draws each image twice:
the truth, then the prediction. Boxes and masks are drawn with :func:`zoo.callbacks.drawing.draw_boxes` and
:func:`zoo.callbacks.drawing.draw_semantic` (torchvision's ``draw_bounding_boxes`` and
``draw_segmentation_masks``), one colour per class (:func:`zoo.callbacks.drawing.class_colour`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch import Tensor
from torchvision.ops import box_iou

from zoo.callbacks.drawing import (
    captioned_grid,
    display_images,
    draw_boxes,
    draw_legend,
    draw_semantic,
    letterbox,
    normalise_each,
    overlay_scale,
    paint_instances,
    resize_image,
)
from zoo.callbacks.figures import EVERY_N_EPOCHS, EvaluationFigure, input_stats, save_figure, should_draw
from zoo.data.targets import IGNORE_INDEX
from zoo.errors import ZooError

__all__ = ["BatchKind", "Overlay", "PredictionOverlays", "batch_kind", "label_names", "overlay_figure"]

BatchKind = Literal["localization", "detection", "segmentation"]

#: image pairs (truth, prediction) per row of the figure
PAIRS_PER_ROW = 2


def batch_kind(batch: Any) -> BatchKind | None:
    """Which task a batch is for, from its structure alone (the callback works with any task that keeps to the
    target conventions of :mod:`zoo.data.targets`).

    - ``(images (B, 3, H, W), {"labels": (B,), "boxes": (B, 4)})``: ``"localization"``, one object an image;
    - ``([image (3, H, W), ...], [{"boxes": (N, 4), "labels": (N,), ...}, ...])``: ``"detection"``;
    - ``(images (B, 3, H, W), semantic (B, H, W) integer)``: ``"segmentation"``;
    - anything else (a classification batch ``(images, labels (B,))``, ...): None.
    """
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        return None
    images, target = batch[0], batch[1]
    if isinstance(images, Tensor) and images.ndim == 4:
        size = len(images)
        if isinstance(target, dict):
            labels, boxes = target.get("labels"), target.get("boxes")
            if isinstance(labels, Tensor) and isinstance(boxes, Tensor) and labels.shape == (size,):
                return "localization" if boxes.shape == (size, 4) else None
        elif isinstance(target, Tensor) and not target.is_floating_point():
            return "segmentation" if target.shape == (size, *images.shape[-2:]) else None
        return None
    if not (
        isinstance(images, list | tuple) and isinstance(target, list | tuple) and len(images) == len(target)
    ):
        return None
    images_ok = all(isinstance(image, Tensor) and image.ndim == 3 for image in images)
    targets_ok = all(
        isinstance(t, dict) and isinstance(t.get("boxes"), Tensor) and isinstance(t.get("labels"), Tensor)
        for t in target
    )
    return "detection" if images_ok and targets_ok else None


def label_names(classes: Sequence[str] | None, count: int | None) -> list[str]:
    """Names indexed by label: ``names[0]`` the background, ``names[i]`` the class of label ``i``.

    A DataModule's ``classes`` names the object classes (label ``i`` is ``classes[i - 1]``); a list of exactly
    ``count`` names (the classes a model scores, background included) is taken to name the background too.
    """
    names = [str(name) for name in classes or ()]
    if count is not None and len(names) == count:
        return names
    return ["background", *names]


@dataclass
class Overlay:
    """What is drawn over one image: boxes with their captions, and a class per pixel.

    Attributes:
        boxes: ``(N, 4)`` ``XYXY`` pixels of the image.
        labels: ``(N,)`` 1-based classes of the boxes (their colours).
        captions: one text per box.
        semantic: ``(H, W)`` class per pixel (0 background, 255 ignored), or None for no mask.
        summary: one line under the tile.
        legend: ``(label, name)`` of the classes to name in the tile's corner (a mask's classes; boxes carry
            their own names).
    """

    boxes: Tensor
    labels: Tensor
    captions: list[str]
    semantic: Tensor | None
    summary: str
    legend: list[tuple[int, str]] = field(default_factory=list)


def overlay_figure(
    pictures: Sequence[Tensor],
    pairs: Sequence[tuple[Overlay, Overlay]],
    *,
    min_side: int = 192,
    max_side: int = 512,
    alpha: float = 0.5,
) -> Image.Image:
    """Each picture drawn twice, with its true then its predicted boxes and masks, in rows of
    :data:`PAIRS_PER_ROW` pairs.

    Every image is resized by :func:`~zoo.callbacks.drawing.overlay_scale` before drawing (lines and labels
    stay thin and readable) and centred on a square tile of the longest resized side; tiles are captioned
    ``<n> truth`` / ``<n> prediction`` and the overlay's summary.

    Args:
        pictures: ``(3, H, W)`` images in 0..1 (sizes may differ).
        pairs: per picture, the true and the predicted overlay.
        min_side: small images are enlarged until their longer side is at least this.
        max_side: large images are shrunk until their longer side is at most this.
        alpha: opacity of the mask colours.
    """
    tiles: list[Tensor] = []
    captions: list[tuple[str, str]] = []
    for index, (picture, pair) in enumerate(zip(pictures, pairs, strict=True)):
        image = (picture.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        scale = overlay_scale(image.shape[-2], image.shape[-1], min_side, max_side)
        image = resize_image(image, scale)
        for overlay, title in zip(pair, ("truth", "prediction"), strict=True):
            drawn = image
            if overlay.semantic is not None:
                semantic = F.interpolate(overlay.semantic[None, None].float(), size=image.shape[-2:])
                drawn = draw_semantic(drawn, semantic[0, 0].long(), alpha=alpha)
            drawn = draw_legend(drawn, overlay.legend)
            drawn = draw_boxes(drawn, overlay.boxes.float().cpu() * scale, overlay.labels, overlay.captions)
            tiles.append(drawn)
            captions.append((f"{index + 1} {title}", overlay.summary))
    side = max(max(tile.shape[-2:]) for tile in tiles)
    grid = torch.stack([letterbox(tile, side) for tile in tiles])
    return captioned_grid(grid, captions, min(2 * PAIRS_PER_ROW, len(tiles)))


class PredictionOverlays(EvaluationFigure):
    """Draw the first ``num_images`` validation (or test) images with their true and predicted boxes and masks.

    Works with localization, detection and segmentation alike, told apart by the batches
    (:func:`batch_kind`); on batches of any other kind (classification) it draws nothing and warns once. The
    images are kept from the first batches of the epoch (no extra pass over the data) and the model is run on
    them alone, in eval mode with no gradients, when the epoch ends. Each image is drawn as a pair, truth then
    prediction:

    - localization: the box with the class name; the predicted box with the class and its probability;
    - detection: the true boxes; the predicted boxes with ``score >= score_threshold``, with class and score;
      instance masks, when the prediction has ``masks`` (Mask R-CNN), on both;
    - segmentation: each pixel's class as a translucent colour with an opaque edge, background unpainted,
      ignored pixels (255) light grey, the classes named in the tile's corner; the prediction's caption gives
      the share of (not ignored) pixels it got right.

    A class has the same colour in every box, mask and figure. Names come from the DataModule's ``classes``
    (label ``i`` is ``classes[i - 1]``). Images are shown as they are when in 0..1 (the zoo's detection and
    segmentation data), un-normalised with the DataModule's ``mean``/``std`` when it has them, else stretched.

    Figures ``val/overlays`` and ``test/overlays`` (files ``<when>-val-overlays.png``; see
    :mod:`zoo.callbacks.figures`), drawn on rank zero from its own first images.

    Args:
        num_images: images drawn (each twice: truth and prediction).
        every_n_epochs: during a fit, draw every this many epochs (and at the last); validation and test runs
            on their own always draw.
        score_threshold: detections scored below this are not drawn.
        min_side: images whose longer side is shorter are enlarged by a whole factor to at least this many
            pixels (Shapes' 128 px become 256 px), so that lines and labels are readable.
        max_side: images whose longer side is longer are shrunk to this many pixels.
        alpha: opacity of the mask colours, 0 (invisible) to 1 (opaque).

    Raises:
        ZooError: an option out of its range.
    """

    def __init__(
        self,
        num_images: int = 8,
        every_n_epochs: int = EVERY_N_EPOCHS,
        score_threshold: float = 0.5,
        min_side: int = 192,
        max_side: int = 512,
        alpha: float = 0.5,
    ) -> None:
        if num_images < 1:
            raise ZooError(f"PredictionOverlays: num_images must be at least 1, got {num_images}")
        if every_n_epochs < 0:
            raise ZooError(f"PredictionOverlays: every_n_epochs must be 0 or more, got {every_n_epochs}")
        if not 0 <= score_threshold <= 1:
            raise ZooError(f"PredictionOverlays: score_threshold must be from 0 to 1, got {score_threshold}")
        if not 1 <= min_side <= max_side:
            raise ZooError(
                f"PredictionOverlays: need 1 <= min_side <= max_side, got min_side={min_side}, max_side={max_side}"
            )
        if not 0 <= alpha <= 1:
            raise ZooError(f"PredictionOverlays: alpha must be from 0 to 1, got {alpha}")
        self.num_images, self.every_n_epochs = num_images, every_n_epochs
        self.score_threshold = score_threshold
        self.min_side, self.max_side, self.alpha = min_side, max_side, alpha
        self._active = False
        self._warned = False
        self._kind: BatchKind | None = None
        self._kept: list[tuple[Any, Any]] = []  # (images, targets) chunks, as the batches hold them
        self._count = 0

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            rank_zero_warn(f"PredictionOverlays: {message}; no overlays are drawn")

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = trainer.is_global_zero and should_draw(trainer, self.every_n_epochs)
        self._kind, self._kept, self._count = None, [], 0

    def _batch(self, batch: Any) -> None:
        if not self._active or self._count >= self.num_images:
            return
        kind = batch_kind(batch)
        if kind is None or (self._kind is not None and kind != self._kind):
            self._active = False
            self._warn_once(
                "the batches are not (images, target) of localization, detection or segmentation "
                "(see zoo.data.targets)"
            )
            return
        self._kind = kind
        room = self.num_images - self._count
        images, target = batch[0][:room], batch[1]
        # copies, not views (a loader may reuse its buffers), without tv_tensors' classes
        if kind == "detection":
            images, target = [_plain(image) for image in images], [_plain_dict(t) for t in target[:room]]
        elif kind == "localization":
            images, target = _plain(images), _plain_dict({key: value[:room] for key, value in target.items()})
        else:
            images, target = _plain(images), _plain(target[:room])
        self._kept.append((images, target))
        self._count += len(images)

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active or not self._kept or self._kind is None:
            return
        self._active = False
        datamodule = getattr(trainer, "datamodule", None)
        classes = getattr(datamodule, "classes", None)
        count = getattr(datamodule, "num_classes", None)
        pictures: list[Tensor] = []
        pairs: list[tuple[Overlay, Overlay]] = []
        was_training = pl_module.training
        pl_module.eval()
        try:
            for images, target in self._kept:
                with torch.no_grad(), trainer.precision_plugin.forward_context():
                    output = pl_module(images)
                drawn = self._read(output, images, target, classes, count if isinstance(count, int) else None)
                if drawn is None:
                    return
                pictures += _pictures(images, datamodule)
                pairs += drawn
        finally:
            pl_module.train(was_training)
            self._kept = []
        figure = overlay_figure(
            pictures, pairs, min_side=self.min_side, max_side=self.max_side, alpha=self.alpha
        )
        save_figure(trainer, figure, f"{stage}/overlays")

    def _read(
        self, output: Any, images: Any, target: Any, classes: Sequence[str] | None, count: int | None
    ) -> list[tuple[Overlay, Overlay]] | None:
        """The true and predicted overlays of a kept chunk; None (and a warning) when the model's output is not
        what the batch's kind calls for."""
        if self._kind == "localization":
            if not (
                isinstance(output, tuple | list)
                and len(output) == 2
                and all(isinstance(part, Tensor) for part in output)
                and output[0].ndim == 2
                and output[0].shape[0] == len(images)
                and output[1].shape == (len(images), 4)
            ):
                self._warn_once("a localization model must return (logits (B, K), boxes (B, 4))")
                return None
            return _localization(output[0], output[1], target, label_names(classes, output[0].shape[1] + 1))
        if self._kind == "detection":
            if not (
                isinstance(output, list | tuple)
                and len(output) == len(images)
                and all(isinstance(o, dict) and "boxes" in o and "labels" in o for o in output)
            ):
                self._warn_once(
                    "a detection model must return one dict of boxes, labels and scores per image"
                )
                return None
            return _detection(output, target, label_names(classes, count), self.score_threshold)
        # torchvision's segmenters return {"out": logits}
        logits = output.get("out") if isinstance(output, dict) else output
        if not (isinstance(logits, Tensor) and logits.ndim == 4 and logits.shape[0] == len(images)):
            self._warn_once("a segmentation model must return logits (B, num_classes, H, W)")
            return None
        return _segmentation(logits, target, label_names(classes, logits.shape[1]))


def _plain(tensor: Tensor) -> Tensor:
    """A detached copy of ``tensor`` as a plain ``Tensor`` (not a ``tv_tensors`` class)."""
    return tensor.detach().as_subclass(Tensor).clone()


def _plain_dict(target: dict[str, Any]) -> dict[str, Tensor]:
    """:func:`_plain` copies of a target's tensors."""
    return {key: _plain(value) for key, value in target.items() if isinstance(value, Tensor)}


def _name(names: Sequence[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def _pictures(images: Tensor | Sequence[Tensor], datamodule: Any) -> list[Tensor]:
    """The images as pictures in 0..1: un-normalised with the DataModule's ``mean``/``std`` when it has them,
    as they are when already in 0..1 (the zoo's localization, detection and segmentation data), else stretched."""
    mean, std = input_stats(datamodule)
    pictures = []
    for image in images:
        image = image.detach().float().cpu()
        if mean is not None and std is not None:
            image = display_images(image[None], mean, std)[0]
        elif image.min() < 0 or image.max() > 1:
            image = normalise_each(image[None])[0]
        pictures.append(image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3])
    return pictures


def _localization(
    logits: Tensor, boxes: Tensor, target: dict[str, Tensor], names: list[str]
) -> list[tuple[Overlay, Overlay]]:
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    predicted = predicted.cpu() + 1  # the model counts from 0, the data from 1 (0 is the background)
    boxes, true_boxes, labels = boxes.float().cpu(), target["boxes"].float().cpu(), target["labels"].cpu()
    pairs = []
    for index in range(len(labels)):
        label, guess = int(labels[index]), int(predicted[index])
        iou = float(box_iou(boxes[index : index + 1], true_boxes[index : index + 1])[0, 0])
        truth = Overlay(true_boxes[index : index + 1], labels[index : index + 1], [_name(names, label)], None,
                        _name(names, label))  # fmt: skip
        caption = f"{_name(names, guess)} {float(confidence[index]):.0%}"
        prediction = Overlay(boxes[index : index + 1], predicted[index : index + 1], [caption], None,
                             f"{caption}, IoU {iou:.2f}")  # fmt: skip
        pairs.append((truth, prediction))
    return pairs


def _detection(
    output: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    names: list[str],
    threshold: float,
) -> list[tuple[Overlay, Overlay]]:
    pairs = []
    for found, target in zip(output, targets, strict=True):
        boxes, labels = found["boxes"].detach().float().cpu(), found["labels"].detach().cpu()
        scores = found.get("scores")
        scores = scores.detach().float().cpu() if scores is not None else torch.ones(len(labels))
        keep = (scores >= threshold).nonzero().flatten()
        keep = keep[scores[keep].argsort()]  # the highest score drawn last, on top
        masks = found.get("masks")
        semantic = true_semantic = None
        if masks is not None and "masks" in target:
            # Mask R-CNN gives (N, 1, H, W) probabilities
            semantic = paint_instances(masks.detach().cpu().reshape(len(labels), *masks.shape[-2:])[keep] > 0.5,
                                       labels[keep])  # fmt: skip
            true_semantic = paint_instances(target["masks"], target["labels"])
        true_labels = target["labels"].cpu()
        truth = Overlay(target["boxes"].float().cpu(), true_labels, [_name(names, int(k)) for k in true_labels],
                        true_semantic, f"{len(true_labels)} objects")  # fmt: skip
        captions = [f"{_name(names, int(labels[i]))} {float(scores[i]):.2f}" for i in keep]
        prediction = Overlay(boxes[keep], labels[keep], captions, semantic,
                             f"{len(keep)} with score >= {threshold:g}")  # fmt: skip
        pairs.append((truth, prediction))
    return pairs


def _segmentation(logits: Tensor, semantic: Tensor, names: list[str]) -> list[tuple[Overlay, Overlay]]:
    if logits.shape[-2:] != semantic.shape[-2:]:  # a network that predicts at a lower resolution
        logits = F.interpolate(logits.float(), size=semantic.shape[-2:], mode="bilinear", align_corners=False)
    predicted, semantic = logits.argmax(dim=1).cpu(), semantic.cpu().long()
    none = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    pairs = []
    for guess, truth in zip(predicted, semantic, strict=True):
        true_legend, legend = _legend(truth, names), _legend(guess, names)
        known = truth != IGNORE_INDEX
        right = float((guess == truth)[known].float().mean()) if known.any() else float("nan")
        summary = ", ".join(name for _, name in true_legend) or "background only"
        pairs.append((
            Overlay(*none, [], truth, summary, true_legend),
            Overlay(*none, [], guess, f"{right:.0%} of pixels right", legend),
        ))  # fmt: skip
    return pairs


def _legend(semantic: Tensor, names: list[str]) -> list[tuple[int, str]]:
    """``(label, name)`` of the classes in a mask, background and ignored pixels left out."""
    return [(int(k), _name(names, int(k))) for k in semantic.unique() if int(k) not in (0, IGNORE_INDEX)]
