"""The weights of the first layer, the one that looks at pixels, drawn as small images."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image
from torch import Tensor, nn

from zoo.figures.drawing import TILE, tile_grid, to_tiles

__all__ = ["COLUMNS", "filter_figure"]

#: filters per row when each filter is one tile
COLUMNS = 8


def filter_figure(
    layer: nn.Module, *, image_shape: Sequence[int] | None = None, max_filters: int = 64
) -> Image.Image | None:
    """Draw the filters of a convolution, or the weights of a linear layer that reads whole images.

    Weights are shown with zero as mid-grey, each filter scaled by its own largest magnitude, so a filter's sign
    pattern is visible whatever its norm. Filters over one or three input channels are one tile each (grey or
    colour), ``COLUMNS`` to a row; filters over other channel counts are one row each, one tile per input
    channel (at most 16).

    Args:
        layer: an ``nn.Conv2d``, or an ``nn.Linear`` whose inputs are images of ``image_shape`` (a dense
            network's first layer: each unit's weights form an image).
        image_shape: ``(C, H, W)`` of the input images, needed for a linear layer.
        max_filters: filters (output channels or units) shown.

    Returns:
        The figure (tiles of :data:`~zoo.figures.drawing.TILE` pixels), or None when the layer cannot be
        shown as images.
    """
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor):
        return None
    weight = weight.detach().float().cpu()[:max_filters]
    if isinstance(layer, nn.Linear):
        if image_shape is None or math.prod(image_shape) != weight.shape[1]:
            return None
        weight = weight.reshape(len(weight), *image_shape)
    elif not isinstance(layer, nn.Conv2d):
        return None
    count, channels = weight.shape[:2]
    scale = weight.abs().flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    shown = weight / (2 * scale) + 0.5
    if channels in (1, 3):
        return tile_grid(to_tiles(shown, TILE), min(COLUMNS, count))
    shown = shown[:, :16]
    return tile_grid(to_tiles(shown.flatten(0, 1).unsqueeze(1), TILE), shown.shape[1])
