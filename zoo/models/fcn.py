"""FCN: fully convolutional networks for semantic segmentation, over our VGG and ResNet backbones.

Reference: J. Long, E. Shelhamer and T. Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (arXiv:1411.4038). A classification network's dense layers become convolutions (VGG-16's fc6 a 7x7
convolution, fc7 a 1x1, loaded from the ImageNet classifier's weights), a 1x1 convolution scores every class at
stride 32, and transposed convolutions ("deconvolutions") initialised to bilinear interpolation bring the
scores back to the input's size:

* FCN-32s: the stride-32 scores, upsampled 32x in one step (a 64x64 kernel with stride 32);
* FCN-16s: the stride-32 scores upsampled 2x, plus scores of pool4 (stride 16), then upsampled 16x;
* FCN-8s: that sum upsampled 2x again, plus scores of pool3 (stride 8), then upsampled 8x.

As in the paper, the score layers start at zero (the skips begin by adding nothing), the 2x deconvolutions
are learned from their bilinear start and the final one stays fixed to bilinear interpolation. On ResNets the
skips come from ``layer2`` (stride 8) and ``layer3`` (stride 16), and ``layer4`` (stride 32) is scored directly.

Where this differs from the Caffe original, it is for inputs of any size without the original's 100-pixel
padding and its crops: fc6 pads by 3 (its map keeps the size of pool5's); the input is padded at the bottom and
right to a multiple of 32, and the scores are cropped back; each deconvolution replicates its input's border
pixels first, so a freshly initialised one computes exactly ``F.interpolate(mode="bilinear",
align_corners=False)``, borders included.

``fcn_resnet50``, torchvision's own FCN, is in :mod:`zoo.models.fcn_torchvision` (and importable from here);
the bilinear deconvolution and the input normalisation both kinds share are in :mod:`zoo.models.fcn_layers`.

Images come in 0..1; every network here normalises them itself with the ImageNet mean and standard deviation
(buffers, not saved), which is what ImageNet backbone weights expect. ``forward`` returns class logits
``(B, num_classes, H, W)`` at the input's size, channel 0 the background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.fcn_layers import BilinearDeconv, NormalisedInput, bilinear_kernel
from zoo.models.fcn_torchvision import TorchvisionFCN, fcn_resnet50
from zoo.models.registry import create_model, register_model, unknown_option
from zoo.models.resnet import ResNet
from zoo.models.vgg import VGG
from zoo.models.weights import load_weights, weights_for

__all__ = [
    "FCN",
    "BilinearDeconv",
    "TorchvisionFCN",
    "bilinear_kernel",
    "fcn8s_resnet18",
    "fcn8s_resnet50",
    "fcn8s_vgg16",
    "fcn16s_vgg16",
    "fcn32s_vgg16",
    "fcn_resnet50",
]

Stride = Literal[8, 16, 32]

# Registered FCNs: name -> (backbone from the registry, output stride of the scores that are upsampled last).
cfgs: dict[str, tuple[str, Stride]] = {
    "fcn32s_vgg16": ("vgg16", 32),
    "fcn16s_vgg16": ("vgg16", 16),
    "fcn8s_vgg16": ("vgg16", 8),
    "fcn8s_resnet18": ("resnet18", 8),
    "fcn8s_resnet50": ("resnet50", 8),
}

#: the input's sides are padded to a multiple of this (the coarsest stride), so every map lines up exactly
_ALIGN = 32


class FCN(NormalisedInput):
    """A backbone cut at strides 8, 16 and 32, with Long et al.'s score layers, skips and deconvolutions.

    Args:
        stages: three modules, applied in turn: image to the stride-8 map (pool3, ``layer2``), to the stride-16
            map (pool4, ``layer3``), to the stride-32 map (pool5, ``layer4``).
        channels: channels of the three maps, after ``head``.
        num_classes: classes scored, the background included.
        in_channels: channels of the input images (sets the normalisation).
        stride: 32, 16 or 8: FCN-32s, FCN-16s or FCN-8s.
        head: what turns the stride-32 map into features to score (VGG's convolutionised fc6 and fc7); None
            scores the map itself.

    Shape:
        Input ``(B, in_channels, H, W)`` in 0..1, any ``H, W``; output logits ``(B, num_classes, H, W)``.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        channels: tuple[int, int, int],
        *,
        num_classes: int,
        in_channels: int,
        stride: Stride,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if stride not in (8, 16, 32):
            raise ValueError(f"stride must be 8, 16 or 32, got {stride}")
        if len(stages) != 3:
            raise ValueError(f"need three backbone stages (to strides 8, 16 and 32), got {len(stages)}")
        self.set_normalisation(in_channels)
        self.num_classes, self.stride = num_classes, stride
        self.to_stride8, self.to_stride16, self.to_stride32 = stages
        self.head = head if head is not None else nn.Identity()
        self.score32 = nn.Conv2d(channels[2], num_classes, 1)
        self.score16: nn.Module | None = None
        self.score8: nn.Module | None = None
        self.up32to16: nn.Module | None = None
        self.up16to8: nn.Module | None = None
        if stride <= 16:
            self.score16 = nn.Conv2d(channels[1], num_classes, 1)
            self.up32to16 = BilinearDeconv(num_classes, 2)
        if stride == 8:
            self.score8 = nn.Conv2d(channels[0], num_classes, 1)
            self.up16to8 = BilinearDeconv(num_classes, 2)
        self.upsample = BilinearDeconv(num_classes, stride, trainable=False)
        # Long et al.: scores start at zero; a skip then adds nothing until it has learned something
        for score in (self.score32, self.score16, self.score8):
            if isinstance(score, nn.Conv2d):
                nn.init.zeros_(score.weight)
                nn.init.zeros_(cast(Tensor, score.bias))

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)`` in 0..1."""
        height, width = images.shape[-2:]
        x = self.normalise(images)
        # zeros after normalising: the padding is the mean colour, which the scores are cropped away from
        x = F.pad(x, (0, -width % _ALIGN, 0, -height % _ALIGN))
        pool3 = self.to_stride8(x)
        pool4 = self.to_stride16(pool3)
        scores = self.score32(self.head(self.to_stride32(pool4)))
        if self.score16 is not None and self.up32to16 is not None:
            scores = self.up32to16(scores) + self.score16(pool4)
        if self.score8 is not None and self.up16to8 is not None:
            scores = self.up16to8(scores) + self.score8(pool3)
        return self.upsample(scores)[..., :height, :width]


def _vgg_stages(
    backbone: VGG, *, pretrained: bool, dropout: float
) -> tuple[list[nn.Module], tuple[int, int, int], nn.Module]:
    """VGG's ``features`` cut after pool3 and pool4, and fc6/fc7 as convolutions (the classifier's weights when
    it was pretrained)."""
    layers = list(cast(nn.Sequential, backbone.features))
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    if len(pools) != 5:
        raise ValueError(f"expected VGG's five max-pools, found {len(pools)}")

    def width(end: int) -> int:  # channels of the last convolution before layer ``end``
        return [m.out_channels for m in layers[:end] if isinstance(m, nn.Conv2d)][-1]

    stages: list[nn.Module] = [
        nn.Sequential(*layers[: pools[2] + 1]),
        nn.Sequential(*layers[pools[2] + 1 : pools[3] + 1]),
        nn.Sequential(*layers[pools[3] + 1 :]),
    ]
    channels = backbone.num_features
    # built on the meta device: 120M weights are either taken from the dense layers or initialised once, below
    with torch.device("meta"):
        fc6 = nn.Conv2d(channels, 4096, 7, padding=3)
        fc7 = nn.Conv2d(4096, 4096, 1)
    if pretrained:  # Long et al.'s transfer: the dense layers' weights, reshaped to convolutions
        classifier = cast(nn.Sequential, backbone.classifier)
        dense6, dense7 = cast(nn.Linear, classifier[0]), cast(nn.Linear, classifier[3])
        fc6.weight = nn.Parameter(dense6.weight.detach().view(4096, channels, 7, 7))
        fc6.bias = nn.Parameter(dense6.bias.detach())
        fc7.weight = nn.Parameter(dense7.weight.detach().view(4096, 4096, 1, 1))
        fc7.bias = nn.Parameter(dense7.bias.detach())
    else:
        device = next(backbone.parameters()).device
        for conv in (fc6, fc7):
            conv.to_empty(device=device)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(cast(Tensor, conv.bias))
    head = nn.Sequential(
        fc6, nn.ReLU(inplace=True), nn.Dropout(dropout), fc7, nn.ReLU(inplace=True), nn.Dropout(dropout)
    )
    return stages, (width(pools[2]), width(pools[3]), 4096), head


def _resnet_stages(backbone: ResNet) -> tuple[list[nn.Module], tuple[int, int, int]]:
    """The stem, ``layer1`` and ``layer2`` (stride 8), then ``layer3`` (16) and ``layer4`` (32)."""
    stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool)
    stages: list[nn.Module] = [
        nn.Sequential(stem, backbone.layer1, backbone.layer2),
        backbone.layer3,
        backbone.layer4,
    ]
    expansion = backbone.num_features // 512  # 1 for basic blocks, 4 for bottlenecks
    return stages, (128 * expansion, 256 * expansion, 512 * expansion)


def _fcn(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    weights: str | None,
    weights_backbone: str | None,
    **kwargs: Any,
) -> FCN:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs
    )
    kwargs.pop("weights_backbone", None)  # a checkpoint's options may name it; its own weights replace them
    backbone_name, stride = cfgs[name]
    dropout = float(kwargs.pop("dropout", 0.5)) if backbone_name.startswith("vgg") else 0.0
    if kwargs:
        takes = ["weights_backbone", "dropout"] if backbone_name.startswith("vgg") else ["weights_backbone"]
        raise TypeError(unknown_option(name, sorted(kwargs)[0], takes))
    # whole-network weights replace the backbone's: no need to fetch ImageNet weights first
    backbone_weights = weights_backbone if pretrained is None else None
    head: nn.Module | None = None
    if backbone_name.startswith("vgg"):
        # the dense head is needed only to copy its weights into fc6/fc7; without them a tiny one is built
        vgg_head = "imagenet" if backbone_weights is not None else "cifar"
        vgg = create_model(backbone_name, in_channels=in_channels, weights=backbone_weights, head=vgg_head)
        assert isinstance(vgg, VGG)
        stages, channels, head = _vgg_stages(vgg, pretrained=backbone_weights is not None, dropout=dropout)
    else:
        # no ImageNet weights: a one-class head, dropped at once, rather than a 1000-class one
        resnet = create_model(
            backbone_name,
            num_classes=None if backbone_weights is not None else 1,
            in_channels=in_channels,
            weights=backbone_weights,
            stem="imagenet",
        )
        assert isinstance(resnet, ResNet)
        stages, channels = _resnet_stages(resnet)
    model = FCN(stages, channels, num_classes=num_classes, in_channels=in_channels, stride=stride, head=head)
    return load_weights(model, pretrained)


@register_model
def fcn32s_vgg16(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> FCN:
    """FCN-32s on VGG-16 (Long et al.); ``weights_backbone="imagenet"`` starts from VGG-16's ImageNet weights,
    fc6 and fc7 included; ``dropout`` (0.5) follows fc6 and fc7."""
    return _fcn(
        "fcn32s_vgg16",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        **kwargs,
    )


@register_model
def fcn16s_vgg16(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> FCN:
    """FCN-16s on VGG-16 (Long et al.): FCN-32s plus a pool4 skip; options as :func:`fcn32s_vgg16`."""
    return _fcn(
        "fcn16s_vgg16",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        **kwargs,
    )


@register_model
def fcn8s_vgg16(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> FCN:
    """FCN-8s on VGG-16 (Long et al.): pool4 and pool3 skips; options as :func:`fcn32s_vgg16`."""
    return _fcn(
        "fcn8s_vgg16",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        **kwargs,
    )


@register_model
def fcn8s_resnet18(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> FCN:
    """FCN-8s on ResNet-18: skips from ``layer2`` and ``layer3``, ``layer4`` scored directly.

    The smallest FCN here (11.2M parameters): it trains on a CPU at 64x64 (the ``fcn_shapes`` recipe).
    """
    return _fcn(
        "fcn8s_resnet18",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        **kwargs,
    )


@register_model
def fcn8s_resnet50(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kwargs: Any,
) -> FCN:
    """FCN-8s on ResNet-50: skips from ``layer2`` and ``layer3``, ``layer4`` scored directly."""
    return _fcn(
        "fcn8s_resnet50",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        **kwargs,
    )
