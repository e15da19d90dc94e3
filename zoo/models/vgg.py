"""VGG: stacks of 3x3 convolutions, with or without batch normalisation.

Reference: K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", arXiv:1409.1556, 2014 (configurations A, B, D, E → VGG-11, -13, -16, -19). The
``_bn`` variants add batch normalisation after every convolution (S. Ioffe and C. Szegedy, 2015),
as torchvision does.

Two heads:

* ``"imagenet"`` is torchvision's layout, so ``state_dict`` keys (``features.N``, ``classifier.N``)
  and parameter counts match ``torchvision.models.vgg*``: adaptive average pool to 7x7, then
  Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Dropout-Linear(4096, num_classes).
* ``"cifar"`` is the form of kuangliu/pytorch-cifar: the same convolutions, flattened (512x1x1 at
  32x32 input) into a single Linear(512, num_classes). It takes 32x32 input, or 28x28 with
  ``image_size=28``: the first convolution then pads by 3, as if LeCun's 2-pixel border had been added
  around the MNIST-sized image, so every later map has its 32x32 size. kuangliu's VGG
  always has batch normalisation, so ``vgg16_bn(head="cifar")`` is his VGG16 (14,728,266
  parameters at 10 classes); ``vgg16(head="cifar")`` is the same network without it.
"""

from __future__ import annotations

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

__all__ = [
    "VGG",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

# Output channels of the 3x3 convolutions (padding 1); "M" is a 2x2 max-pool.
cfgs: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    "vgg19": [
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"
    ],  # E
}  # fmt: skip


class VGG(Backbone):
    """A VGG network: ``features`` (convolutions and pools), ``avgpool`` and ``classifier``.

    Weights start as in torchvision: Kaiming-normal (fan-out) convolutions, unit/zero batch-norm
    affine parameters, ``N(0, 0.01)`` linear weights, zero biases.

    Args:
        cfg: Layer list, e.g. ``cfgs["vgg16"]``.
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        batch_norm: Put ``BatchNorm2d`` after every convolution.
        head: ``"imagenet"`` (torchvision's three dense layers, any input size ≥ 32) or ``"cifar"``
            (one dense layer, 32x32 or 28x28 input).
        dropout: Dropout probability in the ``"imagenet"`` head; unused by the ``"cifar"`` head.
        image_size: With the ``"cifar"`` head, 32 or 28 (MNIST family: the first convolution pads by
            3 instead of 1, so later maps have their 32x32 sizes); ignored by the ``"imagenet"`` head.

    Shape:
        Input ``(B, in_channels, H, W)``: 224x224 is the paper's input for the ``"imagenet"`` head,
        32x32 or 28x28 (``image_size``) for the ``"cifar"`` head. ``forward_features`` gives
        ``(B, 512, H/32, W/32)`` (``1x1`` with the ``"cifar"`` head); ``forward`` gives logits
        ``(B, num_classes)``.
    """

    def __init__(
        self,
        cfg: list[int | str],
        *,
        num_classes: int,
        in_channels: int,
        batch_norm: bool = False,
        head: Literal["imagenet", "cifar"] = "imagenet",
        dropout: float = 0.5,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if head == "cifar" and image_size not in (28, 32):
            raise ValueError(f"VGG's 'cifar' head takes 32x32 or 28x28 images, not {image_size}x{image_size}")
        layers: list[nn.Module] = []
        channels, border = in_channels, (32 - image_size) // 2 if head == "cifar" else 0
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(channels, int(v), kernel_size=3, padding=1 + border))
            border = 0
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            channels = int(v)
        self.num_features = channels
        self.features = nn.Sequential(*layers)
        self.avgpool: nn.Module
        self.classifier: nn.Module
        if head == "imagenet":
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, num_classes),
            )
        elif head == "cifar":
            self.avgpool = nn.Identity()  # kuangliu's AvgPool2d(1, 1) is one too
            self.classifier = nn.Linear(channels, num_classes)
        else:
            raise ValueError(f"head must be 'imagenet' or 'cifar', not '{head}'")

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the last feature map ``(B, 512, H/32, W/32)``."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))


# torchvision's ImageNet-1k weights: file names carry the first digits of their SHA-256.
_IMAGENET = {  # name: (file, top-1 %, top-5 %)
    "vgg11": ("vgg11-8a719046.pth", 69.02, 88.628),
    "vgg11_bn": ("vgg11_bn-6002323d.pth", 70.37, 89.81),
    "vgg13": ("vgg13-19584684.pth", 69.928, 89.246),
    "vgg13_bn": ("vgg13_bn-abd245e5.pth", 71.586, 90.374),
    "vgg16": ("vgg16-397923af.pth", 71.592, 90.382),
    "vgg16_bn": ("vgg16_bn-6c64b313.pth", 73.36, 91.516),
    "vgg19": ("vgg19-dcbb9e9d.pth", 72.376, 90.876),
    "vgg19_bn": ("vgg19_bn-c79401a0.pth", 74.218, 91.842),
}
for _name, (_file, _top1, _top5) in _IMAGENET.items():
    register_weights(
        Weights(
            model=_name,
            tag="imagenet",
            url=f"https://download.pytorch.org/models/{_file}",
            sha256=_file.rsplit("-", 1)[1].removesuffix(".pth"),
            num_classes=1000,
            metrics={"imagenet_top1": _top1, "imagenet_top5": _top5},
            preprocess=IMAGENET_PREPROCESS,
            categories=imagenet_categories(),
            model_kwargs={"head": "imagenet"},
            source="torchvision IMAGENET1K_V1 (keys match ours)",
        )
    )


def _vgg(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> VGG:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    cfg, batch_norm = cfgs[name.removesuffix("_bn")], name.endswith("_bn")
    model = VGG(cfg, num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm, **kwargs)
    return load_weights(model, pretrained)


@register_model
def vgg11(*, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A); ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg11", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg11_bn(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> VGG:
    """VGG-11 (configuration A) with batch normalisation; ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg11_bn", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg13(*, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any) -> VGG:
    """VGG-13 (configuration B); ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg13", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg13_bn(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> VGG:
    """VGG-13 (configuration B) with batch normalisation; ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg13_bn", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg16(*, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D); ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg16", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg16_bn(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> VGG:
    """VGG-16 (configuration D) with batch normalisation; ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg16_bn", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg19(*, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any) -> VGG:
    """VGG-19 (configuration E); ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg19", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def vgg19_bn(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> VGG:
    """VGG-19 (configuration E) with batch normalisation; ``head`` and ``dropout`` go to :class:`VGG`."""
    return _vgg("vgg19_bn", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)
