"""Pictures of tensors, drawn with torchvision's ``make_grid`` and PIL: grids of tiles, captions, heat maps, and
boxes and masks over images (``draw_bounding_boxes``, ``draw_segmentation_masks``).

Everything here is plain torch and PIL (no matplotlib: a figure costs milliseconds, not a second), and every
figure has a size that follows from its content alone, so tests can check it:

- a grid of ``n`` tiles in ``ncol`` columns is ``ncol * (side + PAD) + PAD`` pixels wide and
  ``rows * (side + caption + PAD) + PAD`` high, with ``side`` the tile's side (:data:`TILE` for maps and filters,
  :data:`IMAGE_TILE` for captioned images) and ``caption`` :data:`CAPTION` when tiles carry captions;
- a confusion matrix of ``K`` classes is a square of ``MARGIN + K * cell_size(K) + PAD`` pixels.

Every tile is resized to its side (nearest neighbour when enlarging, so pixels and filter weights stay sharp).
Images with boxes and masks keep their aspect ratio instead: :func:`overlay_scale` enlarges a small image by a
whole factor (sharp pixels, a readable label) and :func:`letterbox` centres it on a square tile.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from zoo.data.targets import IGNORE_INDEX

__all__ = [
    "CAPTION",
    "IGNORE_COLOUR",
    "IMAGE_TILE",
    "MARGIN",
    "PAD",
    "TILE",
    "captioned_grid",
    "cell_size",
    "class_colour",
    "confusion_image",
    "display_images",
    "draw_boxes",
    "draw_legend",
    "draw_semantic",
    "font",
    "heat",
    "letterbox",
    "normalise_each",
    "overlay_scale",
    "paint_instances",
    "resize_image",
    "tile_grid",
    "to_tiles",
]

#: side in pixels of a tile showing a feature map or a filter
TILE = 64
#: side in pixels of a tile showing an input image with a caption under it
IMAGE_TILE = 96
#: height in pixels of the two caption lines under a captioned tile
CAPTION = 26
#: pixels between tiles and around the grid
PAD = 2
#: room in pixels for the class names left of and above a confusion matrix
MARGIN = 96

#: the colour of pixels that belong to no class (:data:`zoo.data.targets.IGNORE_INDEX`, VOC's object borders)
IGNORE_COLOUR = (200, 200, 200)

_WHITE = 255
_GOOD, _BAD, _INK = (0, 110, 0), (190, 0, 0), (0, 0, 0)


@cache
def font(size: int = 10) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's built-in font at ``size`` pixels (a bitmap font where Pillow was built without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # older Pillow, or no FreeType
        return ImageFont.load_default()


def display_images(images: Tensor, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """Turn a batch of network inputs back into pictures.

    Args:
        images: float images ``(B, C, H, W)`` as the network sees them.
        mean: per-channel mean ``(C,)`` used to normalise them (0..1 units), or None.
        std: per-channel standard deviation ``(C,)``, or None.

    Returns:
        float images ``(B, C, H, W)`` in 0..1: un-normalised with ``mean``/``std`` when given, else stretched
        so that each image spans 0..1.
    """
    images = images.detach().float().cpu()
    if mean is not None and std is not None and mean.numel() == images.shape[1] == std.numel():
        shape = (1, -1, 1, 1)
        return (images * std.float().cpu().view(shape) + mean.float().cpu().view(shape)).clamp(0, 1)
    return normalise_each(images)


def normalise_each(maps: Tensor) -> Tensor:
    """Stretch every map (every entry of the first dimension) to span 0..1; constant maps become 0."""
    flat = maps.detach().float().reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = (flat.max(dim=1, keepdim=True).values - low).clamp_min(1e-12)
    return ((flat - low) / span).reshape(maps.shape)


def heat(maps: Tensor) -> Tensor:
    """Colour maps ``(B, H, W)`` in 0..1 with a black → red → yellow → white scale; returns ``(B, 3, H, W)``."""
    scaled = maps.clamp(0, 1) * 3
    return torch.stack([scaled.clamp(0, 1), (scaled - 1).clamp(0, 1), (scaled - 2).clamp(0, 1)], dim=1)


def to_tiles(images: Tensor, side: int) -> Tensor:
    """Resize images ``(B, C, H, W)`` in 0..1 to ``side`` pixels square, as ``uint8`` RGB ``(B, 3, side, side)``.

    One channel becomes grey; more than three keep the first three.
    """
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = images[:, :3]
    height, width = images.shape[-2:]
    if (height, width) != (side, side):
        if max(height, width) <= side:
            images = F.interpolate(images, size=(side, side), mode="nearest")
        else:
            images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def tile_grid(tiles: Tensor, ncol: int) -> Image.Image:
    """Lay ``uint8`` tiles ``(N, 3, S, S)`` out in rows of ``ncol``, on white, as a PIL image."""
    if len(tiles) == 1:  # make_grid returns a lone tile as it is, without the border
        grid = F.pad(tiles[0], (PAD, PAD, PAD, PAD), value=_WHITE)
    else:
        grid = make_grid(tiles, nrow=max(1, ncol), padding=PAD, pad_value=_WHITE)
    return Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())


def captioned_grid(
    tiles: Tensor, captions: Sequence[tuple[str, str]], ncol: int, *, wrong: Sequence[bool] | None = None
) -> Image.Image:
    """A grid of ``uint8`` tiles ``(N, 3, S, S)``, each with two lines of caption under it.

    Args:
        tiles: the pictures, as made by :func:`to_tiles`.
        captions: two lines per tile (for example the true label and the prediction).
        ncol: tiles per row.
        wrong: per tile, whether to print its second line in red (a mistake) rather than green; None prints
            both lines in black.
    """
    blank = torch.full((tiles.shape[0], 3, CAPTION, tiles.shape[-1]), _WHITE, dtype=torch.uint8)
    picture = tile_grid(torch.cat([tiles, blank], dim=2), ncol)
    draw = ImageDraw.Draw(picture)
    side, face = tiles.shape[-1], font(10)
    for index, (first, second) in enumerate(captions):
        row, col = divmod(index, max(1, ncol))
        x = PAD + col * (side + PAD)
        y = PAD + row * (side + CAPTION + PAD) + side + 1
        colour = _INK if wrong is None else (_BAD if wrong[index] else _GOOD)
        draw.text((x + 1, y), _fit(first, side - 2, face), fill=_INK, font=face)
        draw.text((x + 1, y + CAPTION // 2), _fit(second, side - 2, face), fill=colour, font=face)
    return picture


def cell_size(num_classes: int) -> int:
    """Side in pixels of one cell of a confusion matrix of ``num_classes`` classes."""
    if num_classes <= 12:
        return 36
    if num_classes <= 24:
        return 28
    return max(6, 720 // num_classes)


def confusion_image(matrix: Tensor, names: Sequence[str]) -> Image.Image:
    """Draw a confusion matrix: rows are true classes, columns predictions.

    Each cell is shaded by the fraction of its row (so a class with few images is as readable as a large one)
    and, where cells are big enough, shows the count.

    Args:
        matrix: counts ``(K, K)``, ``matrix[t, p]`` images of class ``t`` predicted as ``p``.
        names: the ``K`` class names (truncated to fit the margins).

    Returns:
        An RGB image of ``MARGIN + K * cell_size(K) + PAD`` pixels square.
    """
    counts = matrix.detach().cpu().long()
    classes = counts.shape[0]
    cell = cell_size(classes)
    side = MARGIN + classes * cell + PAD
    fractions = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    picture = Image.new("RGB", (side, side), (_WHITE,) * 3)
    draw = ImageDraw.Draw(picture)
    face = font(10 if cell >= 20 else max(6, cell - 2))
    for true in range(classes):
        for predicted in range(classes):
            value = float(fractions[true, predicted])
            # white for 0, a dark blue for a whole row
            shade = tuple(round(255 - value * (255 - c)) for c in (24, 70, 140))
            x0, y0 = MARGIN + predicted * cell, MARGIN + true * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=shade, outline=(220, 220, 220))
            if cell >= 24 and counts[true, predicted] > 0:
                text = str(int(counts[true, predicted]))
                ink = (255, 255, 255) if value > 0.5 else _INK
                draw.text((x0 + cell / 2, y0 + cell / 2), text, fill=ink, font=face, anchor="mm")
    labels = [_fit(str(name), MARGIN - 14, face) for name in names]
    step = cell if cell >= 10 else 0  # too many classes to name: leave the names out
    for index, label in enumerate(labels if step else []):
        draw.text((MARGIN - 4, MARGIN + index * cell + cell / 2), label, fill=_INK, font=face, anchor="rm")
        upright = Image.new("RGB", (MARGIN - 4, cell), (_WHITE,) * 3)
        ImageDraw.Draw(upright).text((2, cell / 2), label, fill=_INK, font=face, anchor="lm")
        picture.paste(upright.rotate(90, expand=True), (MARGIN + index * cell, 0))
    corner = font(9)
    draw.text((2, 2), "rows: true", fill=_INK, font=corner)
    draw.text((2, 14), "columns: predicted", fill=_INK, font=corner)
    return picture


def class_colour(label: int) -> tuple[int, int, int]:
    """The colour of class ``label`` (1-based) in every box and mask: bright, and the same in every figure.

    Hues a golden ratio of a turn apart, so that neighbouring labels (the classes most often confused with
    each other in a 3-class set) differ most, for any number of classes.
    """
    hue = (label * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def draw_boxes(
    image: Tensor, boxes: Tensor, labels: Tensor, captions: Sequence[str] | None = None, *, width: int = 2
) -> Tensor:
    """Draw boxes, each in its class's colour, with a caption on its top-left corner.

    Args:
        image: ``uint8`` RGB ``(3, H, W)``.
        boxes: ``(N, 4)`` ``XYXY`` in pixel edges (a box over columns 3..7 has ``x1 = 3``, ``x2 = 8``): the outline
            is drawn on the box's outermost pixels. Corners out of order or outside the image are tolerated.
        labels: ``(N,)`` classes (1-based), which pick the colours (:func:`class_colour`).
        captions: one text per box (the class name, a score), or None for none.
        width: line width in pixels.

    Returns:
        A new ``uint8`` image ``(3, H, W)``; ``image`` itself when there is no box.
    """
    if len(boxes) == 0:
        return image  # draw_bounding_boxes would warn
    height, width_ = image.shape[-2:]
    boxes = boxes.detach().float().cpu()
    # pixel edges to the outermost pixels, and every box valid: draw_bounding_boxes refuses reversed corners
    x1, x2 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2]) - 1
    y1, y2 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3]) - 1
    x1, x2 = x1.clamp(0, width_ - 1), torch.maximum(x2, x1).clamp(0, width_ - 1)
    y1, y2 = y1.clamp(0, height - 1), torch.maximum(y2, y1).clamp(0, height - 1)
    colours: list[str | tuple[int, int, int]] = [class_colour(int(label)) for label in labels]
    return draw_bounding_boxes(
        image,
        torch.stack([x1, y1, x2, y2], 1).round(),
        labels=list(captions) if captions is not None else None,
        colors=colours,
        width=width,
        label_colors="black",
        fill_labels=True,  # black text on the box's colour reads on any image
    )


def draw_semantic(
    image: Tensor,
    semantic: Tensor,
    *,
    alpha: float = 0.5,
    outline: int = 2,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Paint each pixel's class over an image: classes in their colours, the background left alone, ignored
    pixels in :data:`IGNORE_COLOUR`.

    Args:
        image: ``uint8`` RGB ``(3, H, W)``.
        semantic: integer ``(H, W)``: 0 background, ``k`` class ``k``, ``ignore_index`` no class.
        alpha: opacity of the class colours inside a region (ignored pixels are painted opaque: there is nothing
            to see there).
        outline: the pixels of a region within this distance of another class are painted opaque, so that the
            region shows even where the image has nearly the class's colour; 0 for none.
        ignore_index: the value of pixels that belong to no class.

    Returns:
        A new ``uint8`` image ``(3, H, W)``.
    """
    semantic = semantic.detach().cpu().long()
    present = [int(k) for k in semantic.unique() if int(k) not in (0, ignore_index)]
    if present:
        masks = semantic[None] == torch.tensor(present).view(-1, 1, 1)
        colours: list[str | tuple[int, int, int]] = [class_colour(k) for k in present]
        image = draw_segmentation_masks(image, masks, alpha=alpha, colors=colours)
        if outline > 0:
            # a pixel is on the edge when another class is within `outline` pixels (the image's border is not)
            others = F.max_pool2d((~masks)[None].float(), 2 * outline + 1, stride=1, padding=outline)[0]
            image = draw_segmentation_masks(image, masks & (others > 0), alpha=1.0, colors=colours)
    ignored = semantic == ignore_index
    if ignored.any():
        image = draw_segmentation_masks(image, ignored, alpha=1.0, colors=IGNORE_COLOUR)
    return image


def draw_legend(image: Tensor, entries: Sequence[tuple[int, str]]) -> Tensor:
    """Name the classes painted on an image: one chip a class, in the class's colour, down its top-left corner.

    Args:
        image: ``uint8`` RGB ``(3, H, W)``.
        entries: ``(label, name)`` of each class to name.

    Returns:
        A new ``uint8`` image ``(3, H, W)``; ``image`` itself when there is nothing to name.
    """
    if not entries:
        return image
    picture = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    draw, face = ImageDraw.Draw(picture), font(10)
    for row, (label, name) in enumerate(entries):
        x, y = 2, 2 + row * 14
        right = x + face.getlength(name) + 4
        draw.rectangle((x, y, right, y + 12), fill=class_colour(label))
        draw.text((x + 2, y + 1), name, fill=_INK, font=face)
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1).contiguous()


def paint_instances(masks: Tensor, labels: Tensor) -> Tensor:
    """One class per pixel from instance masks: ``(N, H, W)`` (any dtype, non-zero inside) and ``(N,)`` labels give
    an ``int64`` ``(H, W)`` map, 0 where no mask is, later masks over earlier ones (where detections overlap, the
    last listed wins)."""
    masks = masks.detach().cpu().bool()
    semantic = torch.zeros(masks.shape[-2:], dtype=torch.long)
    for mask, label in zip(masks, labels.detach().cpu().tolist(), strict=True):
        semantic[mask] = int(label)
    return semantic


def overlay_scale(height: int, width: int, min_side: int, max_side: int) -> float:
    """The factor an image is resized by before boxes and masks are drawn over it.

    A whole factor that brings the longer side to at least ``min_side`` (pixels stay square and sharp, and the
    labels readable) for small images, unless that passes ``max_side``, then the exact factor to ``min_side``;
    the factor that brings the longer side down to ``max_side`` for large images; 1 for the others.
    """
    longest = max(height, width)
    if longest < min_side:
        whole = math.ceil(min_side / longest)
        return float(whole) if longest * whole <= max_side else min_side / longest
    if longest > max_side:
        return max_side / longest
    return 1.0


def resize_image(image: Tensor, scale: float) -> Tensor:
    """A ``uint8`` image ``(3, H, W)`` resized by ``scale`` (nearest neighbour up, antialiased bilinear down)."""
    if scale == 1.0:
        return image
    size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
    if scale > 1:
        return F.interpolate(image[None], size=size, mode="nearest")[0]
    resized = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)[0]
    return resized.round().clamp(0, 255).to(torch.uint8)


def letterbox(image: Tensor, side: int) -> Tensor:
    """A ``uint8`` image ``(3, H, W)`` with ``H, W <= side`` centred on a white ``(3, side, side)`` tile."""
    height, width = image.shape[-2:]
    top, left = (side - height) // 2, (side - width) // 2
    return F.pad(image, (left, side - width - left, top, side - height - top), value=_WHITE)


def _fit(text: str, width: int, face: Any) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels wide."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"
