"""What chosen layers compute for a fixed batch of images: one picture per channel, per image, per layer."""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor, nn

from zoo.figures.drawing import TILE, display_images, normalise_each, tile_grid, to_tiles
from zoo.figures.layers import capture, conv_layers, find_layer

__all__ = ["default_layers", "feature_map_figures"]


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
    stretched to its own 0..1 range (a constant map is black) and resized to :data:`~zoo.figures.drawing.TILE`
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
