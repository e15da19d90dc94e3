"""The weights of the first layer, the one that looks at pixels, drawn as the network learns them."""

from __future__ import annotations

import lightning as L
from torch import nn

from zoo.figures.filters import filter_figure
from zoo.figures.layers import find_layer, first_weight_layer
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.tasks.base import datamodule_of

__all__ = ["Filters"]


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
        data = datamodule_of(trainer)
        figure = filter_figure(
            layer, image_shape=data.image_shape if data else None, max_filters=self.max_filters
        )
        if figure is not None:
            save_figure(trainer, figure, "filters")
