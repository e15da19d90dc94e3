"""What chosen layers compute for a fixed batch of validation images, drawn as the network learns.

The drawing is :func:`zoo.figures.feature_maps.feature_map_figures`; the layers' outputs are caught by forward
hooks on those layers (intermediate activations, which no step returns).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from zoo.figures.feature_maps import default_layers, feature_map_figures
from zoo.figures.layers import find_layer
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.tasks.base import datamodule_of
from zoo.tasks.data import input_stats

__all__ = ["FeatureMaps"]


class FeatureMaps(L.Callback):
    """Draw the feature maps of chosen layers for a fixed batch of validation images.

    The batch is the first ``num_images`` images of the first validation batch, kept from the first validation
    epoch on, so every figure shows the same images. Figures ``featuremaps/<layer>``; rank zero runs the
    network on them once per drawing (a few images: milliseconds).

    Args:
        layers: layer names as in ``task.named_modules()`` (``net.features.0``); None takes the first and the
            last convolution. An unknown name stops the run before training starts.
        num_images: images in the fixed batch.
        max_channels: feature maps shown per image and layer.
        every_n_epochs: during a fit, draw every this many epochs (and at the last).
    """

    def __init__(
        self,
        layers: list[str] | None = None,
        num_images: int = 4,
        max_channels: int = 16,
        every_n_epochs: int = EVERY_N_EPOCHS,
    ) -> None:
        self.layers, self.num_images = layers, num_images
        self.max_channels, self.every_n_epochs = max_channels, every_n_epochs
        self.images: Tensor | None = None
        self._chosen: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Check the layer names (or choose them) before any step runs."""
        if self.layers is not None:
            for name in self.layers:
                find_layer(pl_module, name)
            self._chosen = list(self.layers)
        else:
            self._chosen = default_layers(pl_module)
            if not self._chosen:
                rank_zero_info("FeatureMaps: the network has no convolution; no feature maps are drawn")

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the fixed batch, once."""
        if self.images is not None or batch_idx != 0 or dataloader_idx != 0 or not trainer.is_global_zero:
            return
        images = batch[0] if isinstance(batch, list | tuple) else batch
        if isinstance(images, Tensor) and images.ndim == 4:
            self.images = images[: self.num_images].detach().cpu().clone()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw, when this epoch draws (rank zero)."""
        if not trainer.is_global_zero or self.images is None or not self._chosen:
            return
        if not should_draw(trainer, self.every_n_epochs):
            return
        mean, std = input_stats(datamodule_of(trainer))
        figures = feature_map_figures(
            pl_module, self.images, self._chosen, max_channels=self.max_channels, mean=mean, std=std
        )
        for name, figure in figures.items():
            save_figure(trainer, figure, f"featuremaps/{name}")
