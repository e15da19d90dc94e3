"""A small convnet: three 3x3 convolutions, two max-pools and one dense layer.

Reference: F. Chollet, *Deep Learning with Python*, 2nd ed., Manning, 2021, chapter 8 (listing 8.1,
the first MNIST convnet; 104,202 parameters).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.base import Backbone
from zoo.models.registry import _check_weights, register_model

__all__ = ["ConvNet", "convnet"]

# Output channels of the 3x3 convolutions; "M" is a 2x2 max-pool.
cfgs: dict[str, list[int | str]] = {"convnet": [32, "M", 64, "M", 128]}


class ConvNet(Backbone):
    """Conv(32)→ReLU→Pool → Conv(64)→ReLU→Pool → Conv(128)→ReLU → Flatten → Linear(num_classes).

    Convolutions are 3x3 without padding ("valid", as in Keras), pools are 2x2 with stride 2, so a
    28x28 input becomes a 128x3x3 feature map. Weights start as Keras initialises them
    (Glorot-uniform, zero bias), as in the book.

    Args:
        cfg: Layer list, e.g. ``cfgs["convnet"]``.
        num_classes: Number of output logits.
        in_channels: Channels ``C`` of the input images.
        image_size: Side of the square input images; fixes the size of the dense layer.

    Shape:
        Input ``(B, in_channels, image_size, image_size)``; ``forward_features`` gives
        ``(B, 128, s, s)`` with ``s = 3`` at 28x28; ``forward`` gives logits ``(B, num_classes)``.
    """

    def __init__(
        self, cfg: list[int | str], *, num_classes: int, in_channels: int, image_size: int = 28
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                layers += [nn.Conv2d(channels, int(v), 3), nn.ReLU(inplace=True)]
                channels, size = int(v), size - 2
            if size < 1:
                raise ValueError(f"image_size {image_size} is too small for this convnet")
        self.num_features = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * size * size, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def _convnet(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> ConvNet:
    _check_weights(name, weights)
    return ConvNet(cfgs[name], num_classes=num_classes, in_channels=in_channels, **kwargs)


@register_model
def convnet(
    *, num_classes: int = 10, in_channels: int = 1, weights: str | None = None, **kwargs: Any
) -> ConvNet:
    """Chollet's small MNIST convnet; ``image_size`` (28) goes to :class:`ConvNet`."""
    return _convnet("convnet", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
