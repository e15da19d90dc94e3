"""Small convnets in the Keras style: unpadded 3x3 convolutions, 2x2 max-pools, dense layers.

* ``convnet``: F. Chollet, *Deep Learning with Python*, 2nd ed., Manning, 2021, chapter 8 (listing
  8.1, the first MNIST convnet: three convolutions, one dense layer; 104,202 parameters).
* ``keras_cnn``: the two-convolution network of the Keras and TensorFlow tutorials (conv 32 → pool →
  conv 32 → pool → flatten → dense 64 → dense 10; 61,482 parameters at 28x28x1).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.base import Backbone
from zoo.models.registry import register_model
from zoo.models.weights import (
    FASHIONMNIST_CATEGORIES,
    FASHIONMNIST_PREPROCESS,
    Preprocess,
    Weights,
    load_weights,
    register_weights,
    weights_for,
)

__all__ = ["ConvNet", "convnet", "keras_cnn"]

# Output channels of the 3x3 convolutions ("M" is a 2x2 max-pool), then the hidden dense layers.
cfgs: dict[str, tuple[list[int | str], list[int]]] = {
    "convnet": ([32, "M", 64, "M", 128], []),
    "keras_cnn": ([32, "M", 32, "M"], [64]),
}


class ConvNet(Backbone):
    """Convolutions and pools (``features``), then ``Flatten`` and dense layers (``classifier``).

    ``convnet`` is Conv(32)→ReLU→Pool → Conv(64)→ReLU→Pool → Conv(128)→ReLU → Flatten → Linear;
    ``keras_cnn`` is Conv(32)→ReLU→Pool → Conv(32)→ReLU→Pool → Flatten → Linear(64)→ReLU → Linear.
    Convolutions are 3x3 without padding ("valid", as in Keras), pools are 2x2 with stride 2, so a
    28x28 input becomes a 128x3x3 (``convnet``) or 32x5x5 (``keras_cnn``) feature map. Weights start
    as Keras initialises them (Glorot-uniform, zero bias).

    Args:
        cfg: Layer list, e.g. ``cfgs["convnet"][0]``.
        num_classes: Number of output logits.
        in_channels: Channels ``C`` of the input images.
        image_size: Side of the square input images; fixes the size of the first dense layer.
        hidden: Widths of the dense layers between ``Flatten`` and the output layer.

    Shape:
        Input ``(B, in_channels, image_size, image_size)``; ``forward_features`` gives
        ``(B, C', s, s)``; ``forward`` gives logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        cfg: list[int | str],
        *,
        num_classes: int,
        in_channels: int,
        image_size: int = 28,
        hidden: list[int] | None = None,
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
        dense: list[nn.Module] = [nn.Flatten(1)]
        width = channels * size * size
        for h in hidden or []:
            dense += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.classifier = nn.Sequential(*dense, nn.Linear(width, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


register_weights(
    Weights(
        model="convnet",
        tag="fashionmnist",
        file="convnet_fashionmnist.safetensors",
        sha256="539f5e483fa82c2348fa45ccb8b2effd33ce30a954c56f9b8ce289f1f482bde7",
        num_classes=10,
        in_channels=1,
        metrics={"fashionmnist_test_acc": 0.9182},
        preprocess=FASHIONMNIST_PREPROCESS,
        categories=FASHIONMNIST_CATEGORIES,
        source="recipe convnet_fashionmnist, seed 0 (docs/results.md)",
    )
)
register_weights(  # classes 0-4 only (T-shirt/top, Trouser, Pullover, Dress, Coat): the start of transfer_fashionmnist
    Weights(
        model="convnet",
        tag="fashionmnist_0to4",
        file="convnet_fashionmnist_0to4.safetensors",
        sha256="c7e8ca0f193d44ba2ec0fcd47f6e12b96e74b975f69b4ece559608f602d2ecda",
        num_classes=5,
        in_channels=1,
        metrics={"fashionmnist_test_acc": 0.9402},
        preprocess=Preprocess(resize=28, crop=28, mean=(0.3143,), std=(0.3627,)),
        categories=FASHIONMNIST_CATEGORIES[:5],
        source="recipe convnet_fashionmnist_0to4, seed 0 (docs/results.md)",
    )
)


def _convnet(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> ConvNet:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    cfg, hidden = cfgs[name]
    return load_weights(
        ConvNet(cfg, num_classes=num_classes, in_channels=in_channels, hidden=hidden, **kwargs), pretrained
    )


@register_model
def convnet(
    *, num_classes: int = 10, in_channels: int = 1, weights: str | None = None, **kwargs: Any
) -> ConvNet:
    """Chollet's small MNIST convnet; ``image_size`` (28) goes to :class:`ConvNet`."""
    return _convnet("convnet", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def keras_cnn(
    *, num_classes: int = 10, in_channels: int = 1, weights: str | None = None, **kwargs: Any
) -> ConvNet:
    """The Keras tutorials' two-convolution MNIST network; ``image_size`` (28) goes to :class:`ConvNet`."""
    return _convnet("keras_cnn", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
