"""Images captioned with their true and predicted classes: the drawing behind :class:`zoo.callbacks.PredictionGrid`."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from zoo.figures.drawing import IMAGE_TILE, captioned_grid, display_images, to_tiles

__all__ = ["COLUMNS", "prediction_figure"]

#: tiles per row of the grids
COLUMNS = 8


def prediction_figure(
    images: Tensor,
    labels: Tensor,
    probabilities: Tensor,
    names: list[str],
    *,
    mean: Tensor | None = None,
    std: Tensor | None = None,
) -> Image.Image:
    """A grid of images, each captioned with its true class and the predicted one (green when right, red when
    wrong) with its probability.

    Args:
        images: network inputs ``(B, C, H, W)``.
        labels: true classes ``(B,)``.
        probabilities: class probabilities ``(B, K)``.
        names: the ``K`` class names.
        mean: per-channel mean the inputs were normalised with, to show them as they were; or None.
        std: per-channel standard deviation, or None.
    """
    confidence, predicted = probabilities.float().cpu().max(dim=1)
    labels = labels.cpu()
    captions = [
        (f"true: {names[int(t)]}", f"{names[int(p)]} {float(c):.0%}")
        for t, p, c in zip(labels, predicted, confidence, strict=True)
    ]
    wrong = (predicted != labels).tolist()
    tiles = to_tiles(display_images(images, mean, std), IMAGE_TILE)
    return captioned_grid(tiles, captions, min(COLUMNS, len(captions)), wrong=wrong)
