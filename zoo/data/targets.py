"""The targets of localization, detection and segmentation, as every such DataModule gives them.

One sample is ``(image, target)``:

* ``image``: a ``tv_tensors.Image`` ``(3, H, W)``, ``float32`` in 0..1 once transformed;
* ``target``: a dict with
  ``"boxes"`` (``tv_tensors.BoundingBoxes``, ``(N, 4)`` float, format ``XYXY``, in pixels of this image),
  ``"labels"`` (``int64`` ``(N,)``, 1-based: 0 is the background, as torchvision's detectors expect),
  ``"masks"`` (``tv_tensors.Mask`` ``(N, H, W)`` ``uint8``, one per object, when the dataset has them) and
  ``"semantic"`` (``tv_tensors.Mask`` ``(H, W)`` ``int64``: the class of every pixel, 0 background,
  :data:`IGNORE_INDEX` where unknown, when the dataset has it).

Keeping boxes and masks as ``tv_tensors`` is what makes ``torchvision.transforms.v2`` move them with the image.
Batches are lists (:func:`collate_detection`): images and object counts differ from one sample to the next.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors

from zoo.errors import DataError

__all__ = ["IGNORE_INDEX", "MIN_BOX_SIDE", "as_boxes", "check_boxes", "collate_detection"]

#: the semantic-mask value of pixels that count for no class (VOC's object borders)
IGNORE_INDEX = 255
#: boxes narrower or shorter than this, in pixels, are degenerate
MIN_BOX_SIDE = 1.0


def collate_detection(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """A batch as two lists, images and targets, the form torchvision's detection models take."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)


def check_boxes(boxes: Tensor, *, height: int, width: int, where: str) -> Tensor:
    """Which ``XYXY`` boxes are usable: inside the image (after clipping) and at least :data:`MIN_BOX_SIDE` wide.

    Args:
        boxes: ``(N, 4)`` boxes in pixels.
        height: the image's height.
        width: the image's width.
        where: what to name in an error (a file and an annotation id).

    Returns:
        A boolean ``(N,)`` mask of the boxes to keep; the caller drops the others (documented filtering).

    Raises:
        DataError: ``boxes`` is not ``(N, 4)`` or holds a NaN.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"{where}: boxes must be (N, 4), got {tuple(boxes.shape)}")
    if torch.isnan(boxes).any():
        raise DataError(f"{where}: a box has a NaN coordinate")
    x1, y1 = boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height)
    x2, y2 = boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)
    return ((x2 - x1) >= MIN_BOX_SIDE) & ((y2 - y1) >= MIN_BOX_SIDE)


def as_boxes(boxes: Tensor, *, height: int, width: int) -> tv_tensors.BoundingBoxes:
    """``(N, 4)`` pixel boxes in ``XYXY`` as a ``tv_tensors.BoundingBoxes`` of an image of that size."""
    return tv_tensors.BoundingBoxes(boxes.float(), format="XYXY", canvas_size=(height, width))
