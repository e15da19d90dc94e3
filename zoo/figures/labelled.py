"""Image files with what a network predicted for them drawn on, for ``zoo predict --overlay``: a class name and
its probability, the boxes of a detector with their classes and scores, or a segmenter's class per pixel.

Each picture is the file itself (read as RGB), its longer side brought to 256..1024 pixels
(:func:`zoo.figures.drawing.overlay_scale`), so the labels are readable on thumbnails and on large photos alike;
boxes and masks are given in the file's own pixels and scaled with it. The colours are those of every other
figure (:func:`zoo.figures.drawing.class_colour`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from zoo.data.readers.images import read_image
from zoo.figures.drawing import (
    class_colour,
    draw_boxes,
    draw_legend,
    draw_semantic,
    font,
    overlay_scale,
    resize_image,
)

__all__ = ["draw_detections", "draw_label", "draw_mask", "resize_classes"]

#: the side an overlay's longer edge is brought to, up for small images and down for large ones
_OVERLAY_SIDES = (256, 1024)


def _picture(source: Path) -> tuple[Tensor, float]:
    """The file as ``uint8`` RGB ``(3, H, W)`` at the size it is drawn at, and the factor it was resized by."""
    image = read_image(source)
    height, width = image.shape[-2:]
    scale = overlay_scale(height, width, *_OVERLAY_SIDES)
    return resize_image(image, scale), scale


def _as_pil(image: Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def draw_label(source: Path, label: int, text: str) -> Image.Image:
    """An image file with ``text`` (its class and probability) written in its top-left corner on a chip of
    ``label``'s colour."""
    picture = _as_pil(_picture(source)[0])
    size = max(12, max(picture.size) // 24)  # readable at any size the image is shown at
    draw, face = ImageDraw.Draw(picture), font(size)
    margin = size // 4
    right = margin + face.getlength(text) + 2 * margin
    draw.rectangle((margin, margin, right, margin + size + 2 * margin), fill=class_colour(label))
    draw.text((2 * margin, 2 * margin), text, fill=(0, 0, 0), font=face)
    return picture


def draw_detections(source: Path, boxes: Tensor, labels: Tensor, captions: Sequence[str]) -> Image.Image:
    """An image file with boxes drawn on it.

    Args:
        source: the image file.
        boxes: ``(N, 4)`` ``XYXY`` in the file's pixels.
        labels: ``(N,)`` 1-based classes (their colours).
        captions: one text per box (class and score).
    """
    image, scale = _picture(source)
    width = max(2, max(image.shape[-2:]) // 256)
    return _as_pil(draw_boxes(image, boxes.float() * scale, labels, list(captions), width=width))


def resize_classes(classes: Tensor, size: tuple[int, int]) -> Tensor:
    """A class map ``(h, w)`` brought to ``size`` ``(H, W)`` by nearest neighbour (classes are not blended)."""
    classes = classes.cpu().long()
    if tuple(classes.shape) == size:
        return classes
    return F.interpolate(classes[None, None].float(), size=size, mode="nearest")[0, 0].long()


def draw_mask(source: Path, semantic: Tensor, names: Sequence[str]) -> Image.Image:
    """An image file with a class per pixel painted on it, the classes present named in its top-left corner.

    Args:
        source: the image file.
        semantic: ``(h, w)`` classes (0 the background), at any resolution (resized to the picture's, nearest).
        names: names by label, ``names[0]`` the background.
    """
    image, _ = _picture(source)
    classes = resize_classes(semantic, (image.shape[-2], image.shape[-1]))
    present = [int(k) for k in torch.unique(classes) if 0 < int(k) < len(names)]
    painted = draw_semantic(image, classes)
    return _as_pil(draw_legend(painted, [(k, names[k]) for k in present]))
