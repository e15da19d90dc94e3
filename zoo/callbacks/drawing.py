"""Pictures of tensors, drawn with torchvision's ``make_grid`` and PIL: grids of tiles, captions, heat maps.

Everything here is plain torch and PIL (no matplotlib: a figure costs milliseconds, not a second), and every
figure has a size that follows from its content alone, so tests can check it:

- a grid of ``n`` tiles in ``ncol`` columns is ``ncol * (side + PAD) + PAD`` pixels wide and
  ``rows * (side + caption + PAD) + PAD`` high, with ``side`` the tile's side (:data:`TILE` for maps and filters,
  :data:`IMAGE_TILE` for captioned images) and ``caption`` :data:`CAPTION` when tiles carry captions;
- a confusion matrix of ``K`` classes is a square of ``MARGIN + K * cell_size(K) + PAD`` pixels.

Every tile is resized to its side (nearest neighbour when enlarging, so pixels and filter weights stay sharp).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid

__all__ = [
    "CAPTION",
    "IMAGE_TILE",
    "MARGIN",
    "PAD",
    "TILE",
    "captioned_grid",
    "cell_size",
    "confusion_image",
    "display_images",
    "font",
    "heat",
    "normalise_each",
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


def _fit(text: str, width: int, face: Any) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels wide."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"
