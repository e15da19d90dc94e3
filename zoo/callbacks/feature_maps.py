"""What chosen layers compute for a fixed batch of images: one picture per channel, per image, per layer."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor, nn

from zoo.callbacks.drawing import TILE, display_images, normalise_each, tile_grid, to_tiles
from zoo.callbacks.figures import EVERY_N_EPOCHS, input_stats, save_figure, should_draw
from zoo.callbacks.layers import capture, conv_layers, find_layer

__all__ = ["FeatureMaps", "default_layers", "feature_map_figures"]


def default_layers(model: nn.Module) -> list[str]:
    """The first and the last convolution of ``model`` (one name when it has a single one, none without)."""
    convs = conv_layers(model)
    return list(dict.fromkeys([convs[0], convs[-1]])) if convs else []


@torch.no_grad()
def feature_map_figures(
    model: nn.Module,
    images: Tensor,
    layers: list[str],
    *,
    max_channels: int = 16,
    mean: Tensor | None = None,
    std: Tensor | None = None,
) -> dict[str, Image.Image]:
    """Run ``model`` on ``images`` and draw what each of ``layers`` outputs.

    Each figure has one row per image: the image itself, then its first ``max_channels`` feature maps, each
    stretched to its own 0..1 range (a constant map is black) and resized to :data:`~zoo.callbacks.drawing.TILE`
    pixels.

    Args:
        model: the network or task (in eval mode, on its device).
        images: network inputs ``(B, C, H, W)``.
        layers: names of layers of ``model`` whose output is ``(B, channels, h, w)``; others are left out.
        max_channels: feature maps shown per image.
        mean: per-channel mean the inputs were normalised with, or None.
        std: per-channel standard deviation, or None.

    Returns:
        ``{layer name: figure}``, ``(1 + channels) * (TILE + PAD) + PAD`` pixels wide and
        ``B * (TILE + PAD) + PAD`` high.
    """
    device = next(model.parameters()).device
    with capture({name: find_layer(model, name) for name in layers}) as outputs:
        model(images.to(device))
    inputs = to_tiles(display_images(images, mean, std), TILE)
    figures = {}
    for name in layers:
        output = outputs.get(name)
        if output is None or output.ndim != 4:
            continue
        maps = output[:, :max_channels].float().cpu()
        batch, channels, height, width = maps.shape
        tiles = to_tiles(normalise_each(maps.reshape(batch * channels, 1, height, width)), TILE)
        rows = torch.cat([inputs.unsqueeze(1), tiles.view(batch, channels, *tiles.shape[1:])], dim=1)
        figures[name] = tile_grid(rows.flatten(0, 1), 1 + channels)
    return figures


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
        mean, std = input_stats(getattr(trainer, "datamodule", None))
        figures = feature_map_figures(
            pl_module, self.images, self._chosen, max_channels=self.max_channels, mean=mean, std=std
        )
        for name, figure in figures.items():
            save_figure(trainer, figure, f"featuremaps/{name}")
