"""AlexNet in its single-tower form, and the small-image AlexNet used on CIFAR.

References: A. Krizhevsky, I. Sutskever and G. E. Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012; A. Krizhevsky, "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997, 2014 (the single-tower layout without local response
normalisation that torchvision implements).

Two heads:

* ``"imagenet"`` is torchvision's layout, so ``state_dict`` keys (``features.N``, ``classifier.N``)
  and the parameter count (61,100,840 at 1000 classes) match ``torchvision.models.alexnet``: five
  convolutions (64@11x11/4, 192@5x5, 384, 256, 256 @3x3) with three 3x3/2 max-pools, adaptive average
  pool to 6x6, then Dropout-Linear(9216, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Linear(4096,
  num_classes). It needs inputs of at least 63x63: below that the feature map vanishes.
* ``"cifar"`` is the AlexNet of bearpaw/pytorch-classification: the same five convolutions with
  conv1 padded by 5 and 2x2 max-pools, so a 32x32 image ends as 256x1x1, then a single
  Linear(256, num_classes); 2,472,266 parameters at 10 classes. With ``image_size=28`` conv1 pads
  by 2 more, as LeCun padded MNIST digits to 32x32, so every later tensor has its 32x32 size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from zoo.models.base import Backbone
from zoo.models.registry import register_model
from zoo.models.weights import (
    IMAGENET_PREPROCESS,
    Weights,
    imagenet_categories,
    load_weights,
    register_weights,
    weights_for,
)

__all__ = ["AlexNet", "alexnet", "from_torchvision"]

# The smallest input side the "imagenet" head takes (torchvision's ``min_size``).
_IMAGENET_MIN_SIZE = 63


class AlexNet(Backbone):
    """AlexNet: ``features`` (five convolutions, three max-pools), ``avgpool`` and ``classifier``.

    Weights start with PyTorch's default initialisation, as in torchvision and bearpaw's code.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        head: ``"imagenet"`` (torchvision's three dense layers, inputs of at least 63x63) or
            ``"cifar"`` (one dense layer, 32x32 or 28x28 input).
        image_size: Side of the square input images, or ``None`` for the head's usual size. The
            ``"cifar"`` head takes 32 or 28 (conv1 pads by 2 more at 28); the ``"imagenet"`` head
            takes any side of at least 63 and does not change with it.
        dropout: Dropout probability in the ``"imagenet"`` head; unused by the ``"cifar"`` head.

    Shape:
        Input ``(B, in_channels, H, W)``: 224x224 is the paper's input for the ``"imagenet"`` head,
        where ``forward_features`` gives ``(B, 256, 6, 6)``; 32x32 (or 28x28 with ``image_size=28``)
        for the ``"cifar"`` head, where it gives ``(B, 256, 1, 1)``. ``forward`` gives logits
        ``(B, num_classes)``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        head: Literal["imagenet", "cifar"] = "imagenet",
        image_size: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if head == "imagenet":
            if image_size is not None and image_size < _IMAGENET_MIN_SIZE:
                raise ValueError(
                    f"AlexNet's 'imagenet' head needs inputs of at least {_IMAGENET_MIN_SIZE}x"
                    f"{_IMAGENET_MIN_SIZE}, not {image_size}x{image_size}; use head='cifar' for small images"
                )
            padding, pool_size = 2, 3
        elif head == "cifar":
            if image_size not in (None, 28, 32):
                raise ValueError(
                    f"AlexNet's 'cifar' head takes 32x32 or 28x28 images, not {image_size}x{image_size}"
                )
            padding, pool_size = 5 + (2 if image_size == 28 else 0), 2
        else:
            raise ValueError(f"head must be 'imagenet' or 'cifar', not '{head}'")

        self.num_features = 256
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=pool_size, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=pool_size, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=pool_size, stride=2),
        )
        self.avgpool: nn.Module
        self.classifier: nn.Module
        if head == "imagenet":
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout),
                nn.Linear(256 * 6 * 6, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = nn.Identity()  # the feature map is already 256x1x1
            self.classifier = nn.Linear(256, num_classes)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the last feature map ``(B, 256, h, w)``."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def from_torchvision(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``torchvision.models.alexnet`` state dict as one for :class:`AlexNet` with the ``"imagenet"`` head.

    The module names are the same, so the keys pass through unchanged; this is the one place a
    renaming would go.
    """
    return dict(state_dict)


register_weights(
    Weights(
        model="alexnet",
        tag="imagenet",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256="7be5be79",
        num_classes=1000,
        metrics={"imagenet_top1": 56.522, "imagenet_top5": 79.066},
        preprocess=IMAGENET_PREPROCESS,
        categories=imagenet_categories(),
        model_kwargs={"head": "imagenet"},
        convert=from_torchvision,
        source="torchvision IMAGENET1K_V1",
    )
)


def _alexnet(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> AlexNet:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    return load_weights(AlexNet(num_classes=num_classes, in_channels=in_channels, **kwargs), pretrained)


@register_model
def alexnet(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> AlexNet:
    """AlexNet; ``head``, ``image_size`` and ``dropout`` go to :class:`AlexNet`."""
    return _alexnet("alexnet", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
