"""LeNet-5 in its common modern form.

Reference: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998.
"""

from __future__ import annotations

from typing import Any, Literal

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

__all__ = ["LeNet5", "lenet5"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_POOLS: dict[str, type[nn.Module]] = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(Backbone):
    """C1 conv 6@5x5 → S2 pool → C3 conv 16@5x5 → S4 pool → C5 120 → F6 84 → output.

    Departures from the paper, all usual in modern re-implementations:

    * C3 connects every S2 map to every C3 map (the paper's Table I uses a partial connection
      table); with it the network has 61,706 parameters at 32x32 input and 10 classes.
    * C5 is a ``Linear(16·5·5, 120)``, which is what a 5x5 convolution on a 5x5 map computes.
    * S2/S4 are parameter-free 2x2 pools (the paper's subsampling layers had a trainable
      coefficient and bias per map), the activation is plain ``tanh`` (not ``1.7159·tanh(2a/3)``),
      and the output is a linear layer giving logits (not Euclidean RBF units).
    * Weights use PyTorch's default ``U(±1/√fan_in)`` initialisation (the paper: ``U(±2.4/fan_in)``).

    The paper fed 28x28 MNIST digits padded to 32x32; with ``image_size=28`` C1 pads by 2, so every
    later tensor has the same size as at 32x32.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        image_size: Side of the square input images: 32 (the paper's input) or 28 (MNIST family).
        activation: ``"tanh"`` as in the paper, or ``"relu"``.
        pool: ``"avg"`` (the paper's subsampling) or ``"max"``.

    Shape:
        Input ``(B, in_channels, image_size, image_size)``; ``forward_features`` gives
        ``(B, 16, 5, 5)``; ``forward`` gives logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: int = 32,
        activation: Literal["tanh", "relu"] = "tanh",
        pool: Literal["avg", "max"] = "avg",
    ) -> None:
        super().__init__()
        if image_size not in (28, 32):
            raise ValueError(f"LeNet-5 takes 32x32 or 28x28 images, not {image_size}x{image_size}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, not '{activation}'")
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {sorted(_POOLS)}, not '{pool}'")
        act, pool_ = _ACTIVATIONS[activation], _POOLS[pool]
        self.num_features = 16
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=(32 - image_size) // 2),  # C1
            act(),
            pool_(2),  # S2
            nn.Conv2d(6, 16, 5),  # C3
            act(),
            pool_(2),  # S4
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5
            act(),
            nn.Linear(120, 84),  # F6
            act(),
            nn.Linear(84, num_classes),
        )


register_weights(
    Weights(
        model="lenet5",
        tag="fashionmnist",
        file="lenet5_fashionmnist.safetensors",
        sha256="e27e43b0d43c9c8e8476bff8449fdfc50168f9792191cbcfde0a1f468afc7494",
        num_classes=10,
        in_channels=1,
        metrics={"fashionmnist_test_acc": 0.9117},
        preprocess=FASHIONMNIST_PREPROCESS,
        categories=FASHIONMNIST_CATEGORIES,
        model_kwargs={"image_size": 28, "activation": "relu", "pool": "max"},
        source="recipe lenet5_fashionmnist, seed 0 (docs/results.md)",
    )
)


def _lenet(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> LeNet5:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    return load_weights(LeNet5(num_classes=num_classes, in_channels=in_channels, **kwargs), pretrained)


@register_model
def lenet5(
    *, num_classes: int = 10, in_channels: int = 1, weights: str | None = None, **kwargs: Any
) -> LeNet5:
    """LeNet-5; ``image_size`` (32), ``activation`` ("tanh") and ``pool`` ("avg") go to :class:`LeNet5`."""
    return _lenet("lenet5", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
