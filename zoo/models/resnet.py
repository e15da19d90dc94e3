"""ResNet: deep residual networks for ImageNet, and the CIFAR form of them that kuangliu popularised.

Reference: K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385, 2015 (Table 1). ResNet-18 and -34 stack basic blocks (two 3x3 convolutions),
ResNet-50, -101 and -152 bottleneck blocks (1x1 reduce, 3x3, 1x1 expand by 4). Shortcuts are
identities, and a 1x1 convolution with batch normalisation where the shape changes (the paper's
option B).

The layout is torchvision's, so ``state_dict`` keys (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``) and parameter counts match ``torchvision.models.resnet*``, and
:func:`from_torchvision` maps its weights onto ours. As in torchvision (the "ResNet v1.5" of
Caffe2 and NVIDIA), a bottleneck that halves the map puts its stride on the 3x3 convolution, not on
the first 1x1 as the paper does: the same parameters, slightly better accuracy.

Two stems, chosen with ``stem=`` on every builder:

* ``"imagenet"`` (the paper's): a 7x7 convolution with stride 2 and a 3x3 max-pool with stride 2,
  so a 224x224 image leaves ``layer4`` as a 7x7 map. The adaptive average pool lets any input size
  through, 32x32 and 28x28 included, but such an image is 8x8 or 7x7 after the stem and 1x1 at
  ``layer4``: the network runs yet throws most of the image away.
* ``"cifar"`` (kuangliu/pytorch-cifar, the literature's choice for 32x32 and 28x28 images): one
  3x3 convolution with stride 1 to 64 channels and no max-pool, so ``layer4`` is 4x4 at 32x32 input
  (4x4 at 28x28 too: the maps are 28, 14, 7, 4). ``resnet18_cifar`` is kuangliu's ResNet18
  (11,173,962 parameters at 10 classes); ``resnet50(stem="cifar", num_classes=10)`` is his ResNet50,
  and so on. kuangliu keeps PyTorch's default initialisation; here every stem gets torchvision's.

He et al.'s own CIFAR-10 networks (ResNet-20 to -110, 16 to 64 channels, option A shortcuts) are in
:mod:`zoo.models.resnet_cifar`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from zoo.models.base import Backbone
from zoo.models.registry import register_model
from zoo.models.weights import (
    IMAGENET_PREPROCESS,
    Preprocess,
    Weights,
    imagenet_categories,
    load_weights,
    register_weights,
    weights_for,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "from_torchvision",
    "resnet18",
    "resnet18_cifar",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]

# Block type and number of blocks in each of the four stages (He et al. Table 1).
cfgs: dict[str, tuple[Literal["basic", "bottleneck"], list[int]]] = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch normalisation, added to the shortcut, then ReLU (ResNet-18/34).

    Args:
        in_channels: Channels of the block's input.
        channels: Channels of both convolutions and of the output.
        stride: Stride of the first convolution: 2 where a stage starts by halving the map.
        downsample: The projection shortcut (1x1 convolution, batch norm) where the shape changes;
            ``None`` for the identity.

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, channels, ⌈H/stride⌉, ⌈W/stride⌉)``.
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``relu(residual(x) + shortcut(x))``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (each with batch normalisation), added to the shortcut (ResNet-50+).

    The stride sits on the 3x3 convolution ("ResNet v1.5", as in torchvision).

    Args:
        in_channels: Channels of the block's input.
        channels: Channels of the 1x1 and 3x3 convolutions; the output has ``4 * channels``.
        stride: Stride of the 3x3 convolution: 2 where a stage starts by halving the map.
        downsample: The projection shortcut (1x1 convolution, batch norm) where the shape changes;
            ``None`` for the identity.

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, 4 * channels, ⌈H/stride⌉, ⌈W/stride⌉)``.
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``relu(residual(x) + shortcut(x))``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(Backbone):
    """A ResNet: stem (``conv1``, ``bn1``, ``relu``, ``maxpool``), ``layer1``-``layer4``, ``avgpool``, ``fc``.

    The names are torchvision's, so its ``state_dict`` loads with ``strict=True`` (see
    :func:`from_torchvision`); the head is therefore ``fc``, not ``classifier``. Stages have 64,
    128, 256 and 512 base channels (times 4 for bottlenecks); ``layer2``-``layer4`` halve the map.

    Weights start as in torchvision: Kaiming-normal (fan-out) convolutions, unit/zero batch-norm
    affine parameters, PyTorch's default for ``fc``.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50/101/152).
        layers: Number of blocks in each of the four stages, e.g. ``[3, 4, 6, 3]``.
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        stem: ``"imagenet"`` (7x7 convolution with stride 2 and max-pool; for 224x224 images) or
            ``"cifar"`` (3x3 convolution with stride 1, no max-pool; for 32x32 and 28x28 images).
        zero_init_residual: Start the last batch norm of every block at zero, so that each block
            begins as the identity (Goyal et al., 2017); improves large-batch training a little.

    Shape:
        Input ``(B, in_channels, H, W)``, any ``H, W``. ``forward_features`` gives
        ``(B, num_features, H/32, W/32)`` with the ``"imagenet"`` stem (7x7 at 224x224) and
        ``(B, num_features, H/8, W/8)`` with the ``"cifar"`` stem (4x4 at 32x32), sides rounded up;
        ``num_features`` is 512 for basic blocks and 2048 for bottlenecks. ``forward`` gives
        logits ``(B, num_classes)``.
    """

    head_name: ClassVar[str] = "fc"

    def __init__(
        self,
        block: Literal["basic", "bottleneck"],
        layers: list[int],
        *,
        num_classes: int,
        in_channels: int,
        stem: Literal["imagenet", "cifar"] = "imagenet",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', not '{block}'")
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four positive numbers of blocks, not {layers}")
        self.maxpool: nn.Module
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', not '{stem}'")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)

        block_type = BasicBlock if block == "basic" else Bottleneck
        self._channels = 64
        self.layer1 = self._make_layer(block_type, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block_type, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block_type, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block_type, 512, layers[3], stride=2)
        self.num_features = self._channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], channels: int, blocks: int, stride: int
    ) -> nn.Sequential:
        """One stage: ``blocks`` blocks, the first one with ``stride`` and, if needed, a projection."""
        out_channels = channels * block.expansion
        downsample = None
        if stride != 1 or self._channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self._channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        stage = [block(self._channels, channels, stride, downsample)]
        stage += [block(out_channels, channels) for _ in range(blocks - 1)]
        self._channels = out_channels
        return nn.Sequential(*stage)

    def forward_features(self, x: Tensor) -> Tensor:
        """The output of ``layer4``, ``(B, num_features, h, w)``, for images ``(B, in_channels, H, W)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from ``layer4``'s map: global average pool, flatten, ``fc``."""
        return self.fc(torch.flatten(self.avgpool(x), 1))


def from_torchvision(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a ``torchvision.models.resnet*`` state dict onto the keys of :class:`ResNet`.

    Our module names are torchvision's on purpose, so the mapping is the identity (a new dict
    holding the same tensors); this function is the one place a renaming would go if they
    ever diverged. Load the result with ``model.load_state_dict(..., strict=True)``.

    Args:
        state_dict: E.g. ``torchvision.models.resnet50(weights=...).state_dict()``.

    Returns:
        A state dict for the :class:`ResNet` of the same depth and ``"imagenet"`` stem.
    """
    return dict(state_dict)


# torchvision's ImageNet-1k weights: file names carry the first digits of their SHA-256. "imagenet" is the
# original training (IMAGENET1K_V1); "imagenet_v2" torchvision's longer 2021 recipe, evaluated at 232 -> 224.
_IMAGENET = {  # (name, tag): (file, top-1 %, top-5 %)
    ("resnet18", "imagenet"): ("resnet18-f37072fd.pth", 69.758, 89.078),
    ("resnet34", "imagenet"): ("resnet34-b627a593.pth", 73.314, 91.42),
    ("resnet50", "imagenet"): ("resnet50-0676ba61.pth", 76.13, 92.862),
    ("resnet50", "imagenet_v2"): ("resnet50-11ad3fa6.pth", 80.858, 95.434),
    ("resnet101", "imagenet"): ("resnet101-63fe2227.pth", 77.374, 93.546),
    ("resnet101", "imagenet_v2"): ("resnet101-cd907fc2.pth", 81.886, 95.78),
    ("resnet152", "imagenet"): ("resnet152-394f9c45.pth", 78.312, 94.046),
    ("resnet152", "imagenet_v2"): ("resnet152-f82ba261.pth", 82.284, 96.002),
}
_V2_PREPROCESS = Preprocess(resize=232, crop=224, mean=IMAGENET_PREPROCESS.mean, std=IMAGENET_PREPROCESS.std)
for (_name, _tag), (_file, _top1, _top5) in _IMAGENET.items():
    register_weights(
        Weights(
            model=_name,
            tag=_tag,
            url=f"https://download.pytorch.org/models/{_file}",
            sha256=_file.rsplit("-", 1)[1].removesuffix(".pth"),
            num_classes=1000,
            metrics={"imagenet_top1": _top1, "imagenet_top5": _top5},
            preprocess=IMAGENET_PREPROCESS if _tag == "imagenet" else _V2_PREPROCESS,
            categories=imagenet_categories(),
            model_kwargs={"stem": "imagenet"},
            convert=from_torchvision,
            source=f"torchvision IMAGENET1K_{'V1' if _tag == 'imagenet' else 'V2'}",
        )
    )


def _resnet(name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any) -> ResNet:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    block, layers = cfgs[name.removesuffix("_cifar")]
    model = ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, **kwargs)
    return load_weights(model, pretrained)


@register_model
def resnet18(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """ResNet-18; ``stem`` and ``zero_init_residual`` go to :class:`ResNet`."""
    return _resnet("resnet18", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def resnet34(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """ResNet-34; ``stem`` and ``zero_init_residual`` go to :class:`ResNet`."""
    return _resnet("resnet34", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def resnet50(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """ResNet-50; ``stem`` and ``zero_init_residual`` go to :class:`ResNet`."""
    return _resnet("resnet50", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def resnet101(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """ResNet-101; ``stem`` and ``zero_init_residual`` go to :class:`ResNet`."""
    return _resnet("resnet101", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def resnet152(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """ResNet-152; ``stem`` and ``zero_init_residual`` go to :class:`ResNet`."""
    return _resnet("resnet152", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs)


@register_model
def resnet18_cifar(
    *, num_classes: int = 10, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> ResNet:
    """kuangliu's CIFAR ResNet18: ResNet-18 with the ``"cifar"`` stem, for 32x32 and 28x28 images.

    ``zero_init_residual`` goes to :class:`ResNet`.
    """
    return _resnet(
        "resnet18_cifar",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        stem="cifar",
        **kwargs,
    )
