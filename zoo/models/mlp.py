"""The dense baseline: a one-hidden-layer perceptron on flattened pixels.

Reference: F. Chollet, *Deep Learning with Python*, 2nd ed., Manning, 2021, chapter 2 (the first
MNIST network: ``Dense(512, relu)`` then ``Dense(10, softmax)``; 407,050 parameters).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.base import Backbone
from zoo.models.registry import register_model
from zoo.models.weights import (
    FASHIONMNIST_CATEGORIES,
    FASHIONMNIST_PREPROCESS,
    Weights,
    load_weights,
    register_weights,
    weights_for,
)

__all__ = ["MLP", "mlp"]


class MLP(Backbone):
    """Flatten → Linear(C·H·W, hidden) → ReLU → Linear(hidden, num_classes).

    Weights start as Keras initialises them (Glorot-uniform, zero bias), as in the book.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels ``C`` of the input images.
        image_size: Side ``H = W`` of the square input images.
        hidden: Width of the hidden layer.

    Shape:
        Input ``(B, in_channels, image_size, image_size)``; ``forward_features`` gives
        ``(B, hidden)``; ``forward`` gives logits ``(B, num_classes)``.
    """

    def __init__(
        self, *, num_classes: int, in_channels: int, image_size: int = 28, hidden: int = 512
    ) -> None:
        super().__init__()
        self.num_features = hidden
        self.features = nn.Sequential(
            nn.Flatten(1), nn.Linear(in_channels * image_size * image_size, hidden), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


register_weights(
    Weights(
        model="mlp",
        tag="fashionmnist",
        file="mlp_fashionmnist.safetensors",
        sha256="f8d29c8ce8812d0f55e1d34a9d848a3a0e84ccdf5917e270f4c5f35015aace68",
        num_classes=10,
        in_channels=1,
        metrics={"fashionmnist_test_acc": 0.8824},
        preprocess=FASHIONMNIST_PREPROCESS,
        categories=FASHIONMNIST_CATEGORIES,
        source="recipe mlp_fashionmnist, seed 0 (docs/results.md)",
    )
)


def _mlp(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> MLP:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    return load_weights(MLP(num_classes=num_classes, in_channels=in_channels, **kwargs), pretrained)


@register_model
def mlp(*, num_classes: int = 10, in_channels: int = 1, weights: str | None = None, **kwargs: Any) -> MLP:
    """Chollet's dense MNIST baseline; ``image_size`` (28) and ``hidden`` (512) go to :class:`MLP`."""
    return _mlp("mlp", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
