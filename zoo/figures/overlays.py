"""Boxes and masks drawn over images, the truth next to the prediction, for localization, detection and
segmentation: the drawing behind :class:`zoo.callbacks.PredictionOverlays`, with no Lightning.

Each kind's outputs (:mod:`zoo.tasks.outputs`) become pairs of :class:`Overlay` (truth, prediction) per image
(:func:`localization_overlays`, :func:`detection_overlays`, :func:`segmentation_overlays`), which
:func:`overlay_figure` draws with :func:`zoo.figures.drawing.draw_boxes` and
:func:`zoo.figures.drawing.draw_semantic` (torchvision's ``draw_bounding_boxes`` and ``draw_segmentation_masks``),
one colour per class (:func:`zoo.figures.drawing.class_colour`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.ops import box_iou

from zoo.data.targets import IGNORE_INDEX
from zoo.figures.drawing import (
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

__all__ = [
    "PAIRS_PER_ROW",
    "Overlay",
    "as_pictures",
    "class_name",
    "detection_overlays",
    "label_names",
    "localization_overlays",
    "overlay_figure",
    "segmentation_overlays",
]

#: image pairs (truth, prediction) per row of the figure
PAIRS_PER_ROW = 2


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

    Every image is resized by :func:`~zoo.figures.drawing.overlay_scale` before drawing (lines and labels
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


def as_pictures(
    images: Tensor | Sequence[Tensor], mean: Tensor | None = None, std: Tensor | None = None
) -> list[Tensor]:
    """Network inputs as RGB pictures ``(3, H, W)`` in 0..1, on the CPU.

    Un-normalised with ``mean`` and ``std`` (0..1 units) when given; kept as they are when already in 0..1 (the
    zoo's localization, detection and segmentation data); else stretched to 0..1. Grey images become RGB.

    Args:
        images: ``(B, C, H, W)``, or a sequence of ``(C, H, W)`` images of any sizes.
        mean: per-channel mean the images were normalised with, or None.
        std: per-channel standard deviation, or None.
    """
    pictures = []
    for image in images:
        image = image.detach().float().cpu()
        if mean is not None and std is not None:
            image = display_images(image[None], mean, std)[0]
        elif image.min() < 0 or image.max() > 1:
            image = normalise_each(image[None])[0]
        pictures.append(image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3])
    return pictures


def class_name(names: Sequence[str], label: int) -> str:
    """The name of ``label`` in ``names`` (names by label, :func:`label_names`), or the number where it has none."""
    return names[label] if 0 <= label < len(names) else str(label)


def localization_overlays(
    logits: Tensor, boxes: Tensor, labels: Tensor, true_boxes: Tensor, names: list[str]
) -> list[tuple[Overlay, Overlay]]:
    """Per image, the true box named by its class, and the predicted one with its class and probability.

    Args:
        logits: ``(B, K)`` scores of the object classes, 0-based.
        boxes: ``(B, 4)`` predicted ``XYXY`` boxes in pixels.
        labels: ``(B,)`` true labels, 1-based as the data counts them (0 is the background).
        true_boxes: ``(B, 4)`` true ``XYXY`` boxes in pixels.
        names: names by label, ``names[0]`` the background (:func:`label_names`).
    """
    confidence, predicted = logits.float().cpu().softmax(dim=1).max(dim=1)
    predicted = predicted + 1  # the model counts from 0, the data from 1 (0 is the background)
    boxes, true_boxes, labels = boxes.float().cpu(), true_boxes.float().cpu(), labels.cpu()
    pairs = []
    for index in range(len(labels)):
        label, guess = int(labels[index]), int(predicted[index])
        iou = float(box_iou(boxes[index : index + 1], true_boxes[index : index + 1])[0, 0])
        truth = Overlay(true_boxes[index : index + 1], labels[index : index + 1], [class_name(names, label)], None,
                        class_name(names, label))  # fmt: skip
        caption = f"{class_name(names, guess)} {float(confidence[index]):.0%}"
        prediction = Overlay(boxes[index : index + 1], predicted[index : index + 1], [caption], None,
                             f"{caption}, IoU {iou:.2f}")  # fmt: skip
        pairs.append((truth, prediction))
    return pairs


def detection_overlays(
    found: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    names: list[str],
    threshold: float,
) -> list[tuple[Overlay, Overlay]]:
    """Per image, the true boxes, and the detections scored at least ``threshold`` with class and score.

    Args:
        found: per image, ``boxes`` ``(N, 4)`` ``XYXY`` pixels, 1-based ``labels`` ``(N,)``, ``scores`` ``(N,)``
            (all 1 when absent), and ``masks`` ``(N, 1, H, W)`` probabilities from a Mask R-CNN.
        targets: per image, the true ``boxes`` and ``labels`` (and ``masks`` ``(M, H, W)``, drawn when the
            detections have masks too).
        names: names by label, ``names[0]`` the background (:func:`label_names`).
        threshold: the least score drawn.
    """
    pairs = []
    for detections, target in zip(found, targets, strict=True):
        boxes, labels = detections["boxes"].detach().float().cpu(), detections["labels"].detach().cpu()
        scores = detections.get("scores")
        scores = scores.detach().float().cpu() if scores is not None else torch.ones(len(labels))
        keep = (scores >= threshold).nonzero().flatten()
        keep = keep[scores[keep].argsort()]  # the highest score drawn last, on top
        masks = detections.get("masks")
        semantic = true_semantic = None
        if masks is not None and "masks" in target:
            semantic = paint_instances(masks.detach().cpu().reshape(len(labels), *masks.shape[-2:])[keep] > 0.5,
                                       labels[keep])  # fmt: skip
            true_semantic = paint_instances(target["masks"].cpu(), target["labels"].cpu())
        true_labels = target["labels"].cpu()
        truth = Overlay(target["boxes"].float().cpu(), true_labels, [class_name(names, int(k)) for k in true_labels],
                        true_semantic, f"{len(true_labels)} objects")  # fmt: skip
        captions = [f"{class_name(names, int(labels[i]))} {float(scores[i]):.2f}" for i in keep]
        prediction = Overlay(boxes[keep], labels[keep], captions, semantic,
                             f"{len(keep)} with score >= {threshold:g}")  # fmt: skip
        pairs.append((truth, prediction))
    return pairs


def segmentation_overlays(
    predicted: Tensor, semantic: Tensor, names: list[str]
) -> list[tuple[Overlay, Overlay]]:
    """Per image, the true and the predicted class of every pixel, the classes named in a legend; the prediction
    is captioned with the share of (not ignored) pixels it got right.

    Args:
        predicted: ``(B, h, w)`` predicted classes (resized to the truth's size when it differs).
        semantic: ``(B, H, W)`` true classes, :data:`~zoo.data.targets.IGNORE_INDEX` where ignored.
        names: names by label, ``names[0]`` the background (:func:`label_names`).
    """
    predicted, semantic = predicted.cpu().long(), semantic.cpu().long()
    if predicted.shape[-2:] != semantic.shape[-2:]:  # a network that predicts at another resolution
        predicted = F.interpolate(predicted[:, None].float(), size=semantic.shape[-2:])[:, 0].long()
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
    return [(int(k), class_name(names, int(k))) for k in semantic.unique() if int(k) not in (0, IGNORE_INDEX)]
