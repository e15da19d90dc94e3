"""The CIFAR-10 networks of He et al.: ResNet-20/32/44/56/110 and the plain nets of the same depths.

Reference: K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385, 2015, section 4.2 and Table 6. A 3x3 convolution to 16 channels, then three
stages of ``n`` basic blocks (two 3x3 convolutions with batch normalisation) with 16, 32 and 64
channels on 32x32, 16x16 and 8x8 maps, a global average pool and one linear layer: ``6n + 2``
weighted layers. The first block of the second and third stages halves the map with stride 2.

Shortcuts are the paper's option A: the identity, subsampled with stride 2 and padded with zero
channels where a block doubles the channels (appended after the input's channels, as in
facebook/fb.resnet.torch; akamaster/pytorch_resnet_cifar10 pads both sides, which only permutes
channels). They have no parameters, so a ResNet has exactly the parameters of the plain net of the
same depth, and both round to Table 6's 0.27M, 0.46M, 0.66M, 0.85M and 1.7M at 10 classes. The
plain nets (``residual=False``) are the same stacks without any shortcut (the paper's Fig. 6, left).

28x28 images (MNIST, Fashion-MNIST) work too: the stages see 28x28, 14x14 and 7x7 maps and the
global average pool removes the size, which is what the Fashion-MNIST benchmark ResNets do.
The ImageNet ResNets and kuangliu's CIFAR ResNet18 are in :mod:`zoo.models.resnet`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.models.base import Backbone
from zoo.models.registry import register_model
from zoo.models.weights import load_weights, weights_for

__all__ = [
    "CifarBasicBlock",
    "CifarResNet",
    "ZeroPadShortcut",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
]

# Basic blocks per stage, n, by depth 6n + 2 (He et al. section 4.2).
cfgs: dict[int, int] = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: the identity, subsampled by ``stride`` and padded with zero channels.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output (at least ``in_channels``); the extra ones are zero.
        stride: Keep every ``stride``-th row and column, starting with the first.

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, out_channels, ⌈H/stride⌉, ⌈W/stride⌉)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"a zero-padding shortcut cannot go from {in_channels} to {out_channels} channels"
            )
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """``x`` subsampled, then zero channels appended."""
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class CifarBasicBlock(nn.Module):
    """Two 3x3 convolutions with batch normalisation, plus (if ``residual``) the shortcut, then ReLU.

    Args:
        in_channels: Channels of the block's input.
        channels: Channels of both convolutions and of the output.
        stride: Stride of the first convolution: 2 where a stage starts by halving the map.
        residual: Add the option A shortcut (``shortcut`` is ``None`` when ``False``: a plain block).

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, channels, ⌈H/stride⌉, ⌈W/stride⌉)``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, *, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module | None = None
        if residual:
            same = stride == 1 and in_channels == channels
            self.shortcut = nn.Identity() if same else ZeroPadShortcut(in_channels, channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``relu(block(x) + shortcut(x))``, or ``relu(block(x))`` in a plain net."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class CifarResNet(Backbone):
    """He et al.'s CIFAR-10 network: ``conv1``, ``bn1``, ``relu``, ``layer1``-``layer3``, ``avgpool``, ``fc``.

    Weights start as in the paper (He initialisation, as in facebook/fb.resnet.torch):
    Kaiming-normal (fan-out) convolutions, unit/zero batch-norm affine parameters, PyTorch's
    default for ``fc``.

    Args:
        num_blocks: Basic blocks per stage, ``n``; the depth is ``6n + 2``.
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        residual: ``True`` for the ResNet (option A shortcuts), ``False`` for the plain net.

    Shape:
        Input ``(B, in_channels, H, W)``: 32x32 (CIFAR) or 28x28 (MNIST family); any size runs.
        ``forward_features`` gives ``(B, 64, ⌈H/4⌉, ⌈W/4⌉)`` (8x8 at 32x32, 7x7 at 28x28);
        ``forward`` gives logits ``(B, num_classes)``.
    """

    head_name: ClassVar[str] = "fc"

    def __init__(self, num_blocks: int, *, num_classes: int, in_channels: int, residual: bool = True) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, not {num_blocks}")
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Sequential] = []
        channels = 16
        for out_channels, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [CifarBasicBlock(channels, out_channels, stride, residual=residual)]
            blocks += [
                CifarBasicBlock(out_channels, out_channels, residual=residual) for _ in range(num_blocks - 1)
            ]
            stages.append(nn.Sequential(*blocks))
            channels = out_channels
        self.layer1, self.layer2, self.layer3 = stages
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last 64-channel map ``(B, 64, h, w)`` for images ``(B, in_channels, H, W)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from the last map: global average pool, flatten, ``fc``."""
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cifar_resnet(
    name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any
) -> CifarResNet:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    kind = name.rstrip("0123456789")  # "resnet" or "plain"
    num_blocks = cfgs[int(name.removeprefix(kind))]
    model = CifarResNet(
        num_blocks, num_classes=num_classes, in_channels=in_channels, residual=kind == "resnet", **kwargs
    )
    return load_weights(model, pretrained)


@register_model
def resnet20(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR ResNet-20 (n = 3, option A shortcuts)."""
    return _cifar_resnet(
        "resnet20", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def resnet32(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR ResNet-32 (n = 5, option A shortcuts)."""
    return _cifar_resnet(
        "resnet32", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def resnet44(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR ResNet-44 (n = 7, option A shortcuts)."""
    return _cifar_resnet(
        "resnet44", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def resnet56(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR ResNet-56 (n = 9, option A shortcuts)."""
    return _cifar_resnet(
        "resnet56", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def resnet110(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR ResNet-110 (n = 18, option A shortcuts)."""
    return _cifar_resnet(
        "resnet110", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def plain20(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR plain net of 20 layers: ResNet-20 without shortcuts."""
    return _cifar_resnet(
        "plain20", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def plain32(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR plain net of 32 layers: ResNet-32 without shortcuts."""
    return _cifar_resnet(
        "plain32", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def plain44(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR plain net of 44 layers: ResNet-44 without shortcuts."""
    return _cifar_resnet(
        "plain44", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def plain56(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR plain net of 56 layers: ResNet-56 without shortcuts."""
    return _cifar_resnet(
        "plain56", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )


@register_model
def plain110(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> CifarResNet:
    """He et al.'s CIFAR plain net of 110 layers: ResNet-110 without shortcuts."""
    return _cifar_resnet(
        "plain110", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )
