"""The weights of the first layer, the one that looks at pixels, drawn as small images."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
from PIL import Image
from torch import Tensor, nn

from zoo.callbacks.drawing import TILE, tile_grid, to_tiles
from zoo.callbacks.figures import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.callbacks.layers import find_layer, first_weight_layer

__all__ = ["Filters", "filter_figure"]

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
        The figure (tiles of :data:`~zoo.callbacks.drawing.TILE` pixels), or None when the layer cannot be
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


class Filters(L.Callback):
    """Draw the first layer's filters (figure ``filters``) as the network learns them.

    Args:
        layer: the layer to draw, by name (``net.features.0``); None takes the first convolution or linear layer.
        max_filters: filters shown.
        every_n_epochs: during a fit, draw every this many epochs (and at the last).
    """

    def __init__(
        self, layer: str | None = None, max_filters: int = 64, every_n_epochs: int = EVERY_N_EPOCHS
    ) -> None:
        self.layer, self.max_filters, self.every_n_epochs = layer, max_filters, every_n_epochs

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Check the layer name before any step runs."""
        if self.layer is not None:
            find_layer(pl_module, self.layer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw, when this epoch draws (rank zero)."""
        if not trainer.is_global_zero or not should_draw(trainer, self.every_n_epochs):
            return
        if self.layer is not None:
            layer: nn.Module | None = find_layer(pl_module, self.layer)
        else:
            found = first_weight_layer(pl_module)
            layer = found[1] if found else None
        if layer is None:
            return
        shape = getattr(getattr(trainer, "datamodule", None), "image_shape", None)
        figure = filter_figure(layer, image_shape=shape, max_filters=self.max_filters)
        if figure is not None:
            save_figure(trainer, figure, "filters")
