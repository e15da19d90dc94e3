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

``fcn_resnet50`` is torchvision's own FCN (Long et al.'s head on a ResNet-50 whose last two stages are dilated,
output stride 8, with an optional auxiliary head on ``layer3``), so torchvision's weights load into it.

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
from torchvision.models import resnet as tv_resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCN as TorchvisionFCNBase
from torchvision.models.segmentation.fcn import FCNHead

from zoo.models.registry import create_model, register_model
from zoo.models.resnet import ResNet
from zoo.models.vgg import VGG
from zoo.models.weights import (
    IMAGENET_PREPROCESS,
    Weights,
    load_weights,
    read_weights,
    register_weights,
    weights_for,
)

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


def bilinear_kernel(factor: int) -> Tensor:
    """The ``(2 * factor, 2 * factor)`` bilinear interpolation kernel of Long et al.'s ``upsample_filt``."""
    size = 2 * factor
    centre = factor - 0.5  # an even-sized kernel: the centre falls between two taps
    taps = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    return taps[:, None] * taps[None, :]


def _normalisation(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std for RGB input; for other channel counts a neutral 0.5 and 0.25 per channel."""
    if in_channels == 3:
        return IMAGENET_PREPROCESS.mean, IMAGENET_PREPROCESS.std
    return (0.5,) * in_channels, (0.25,) * in_channels


class _Normalised(nn.Module):
    """Holds the per-channel mean and std as buffers, not saved: they follow from the constructor's arguments."""

    mean: Tensor
    std: Tensor

    def _set_normalisation(self, in_channels: int) -> None:
        mean, std = _normalisation(in_channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """Images in 0..1 to the standardised input the backbone's weights expect."""
        return (images - self.mean) / self.std


class BilinearDeconv(nn.Module):
    """Upsampling by ``factor`` with a transposed convolution that starts as bilinear interpolation.

    The kernel is ``2 * factor`` wide with stride ``factor``, one bilinear filter per channel on the diagonal
    (Long et al.), no bias. The input's border is replicated by one pixel and the output cropped, so at its
    start the layer equals ``F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)``
    everywhere, borders included.

    Args:
        channels: channels in and out (the classes).
        factor: the upsampling factor, even.
        trainable: learn the kernel (the 2x skips of FCN-16s/8s) or keep it bilinear (the final upsampling).

    Shape:
        ``(B, channels, h, w)`` to ``(B, channels, factor * h, factor * w)``.
    """

    def __init__(self, channels: int, factor: int, *, trainable: bool = True) -> None:
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"factor must be even and at least 2, got {factor}")
        self.factor = factor
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
        self.reset_parameters()
        self.deconv.weight.requires_grad_(trainable)

    def reset_parameters(self) -> None:
        """Set the kernel to bilinear interpolation of each channel on its own."""
        with torch.no_grad():
            self.deconv.weight.zero_()
            kernel = bilinear_kernel(self.factor).to(self.deconv.weight)
            for channel in range(self.deconv.weight.shape[0]):
                self.deconv.weight[channel, channel] = kernel

    def forward(self, x: Tensor) -> Tensor:
        """The map upsampled ``factor`` times."""
        height, width = x.shape[-2:]
        # with the border replicated, output pixel o reads input (o + 0.5) / factor - 0.5, as interpolate does
        y = self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        start = 3 * self.factor // 2
        return y[..., start : start + self.factor * height, start : start + self.factor * width]


class FCN(_Normalised):
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
        self._set_normalisation(in_channels)
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
        raise TypeError(f"{name}() got unexpected options: {', '.join(sorted(kwargs))}")
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


# ---- torchvision's FCN ---------------------------------------------------------------------------------------


class TorchvisionFCN(_Normalised, TorchvisionFCNBase):
    """torchvision's ``FCN`` (its module names, so its weights load), normalising its input, returning a tensor.

    ``forward`` gives the main logits; :meth:`forward_aux` gives them with the auxiliary head's, which only
    the training loss uses.
    """

    def __init__(
        self,
        backbone: nn.Module,
        classifier: nn.Module,
        aux_classifier: nn.Module | None,
        *,
        in_channels: int,
    ) -> None:
        TorchvisionFCNBase.__init__(self, backbone, classifier, aux_classifier)
        self._set_normalisation(in_channels)

    @property
    def has_aux(self) -> bool:
        """Whether the network was built with the auxiliary head (``aux_loss=True``)."""
        return self.aux_classifier is not None

    def forward_aux(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Main and auxiliary logits, each ``(B, num_classes, H, W)``; the second is None without the head."""
        outputs = TorchvisionFCNBase.forward(self, self.normalise(images))
        return outputs["out"], outputs.get("aux")

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes, H, W)`` for images ``(B, in_channels, H, W)`` in 0..1."""
        x = self.normalise(images)
        height, width = x.shape[-2:]
        # the main head only: the auxiliary one would be computed and thrown away
        scores = cast(nn.Module, self.classifier)(cast(nn.Module, self.backbone)(x)["out"])
        return F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)


register_weights(
    Weights(
        model="fcn_resnet50",
        tag="coco_voc",
        url="https://download.pytorch.org/models/fcn_resnet50_coco-1167a1af.pth",
        sha256="1167a1af",
        num_classes=21,
        metrics={"coco_voc_miou": 60.5, "coco_voc_pixel_acc": 91.4},
        model_kwargs={"aux_loss": True},
        source="torchvision FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1: COCO train2017 restricted to the 20 "
        "VOC classes, evaluated on COCO val2017 the same way, images resized to 520 (keys match ours)",
    )
)


@register_model
def fcn_resnet50(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    aux_loss: bool | None = None,
) -> TorchvisionFCN:
    """torchvision's FCN-ResNet50: dilated ResNet-50 (output stride 8), ``FCNHead``, optional auxiliary head.

    Args:
        num_classes: classes, the background included (21 for VOC).
        in_channels: channels of the input images.
        weights: ``"coco_voc"`` (torchvision's COCO-with-VOC-labels weights, 60.5 mIoU on its COCO subset), or
            a zoo checkpoint.
        weights_backbone: ``"imagenet"`` starts the ResNet-50 from its ImageNet weights (torchvision's
            default for this model); ignored when ``weights`` are given.
        aux_loss: add the auxiliary head on ``layer3`` (torchvision's training adds its loss, weighted 0.5);
            None: as the weights have it, else no.
    """
    given = {} if aux_loss is None else {"aux_loss": aux_loss}
    pretrained, options = weights_for(
        "fcn_resnet50", weights, num_classes=num_classes, in_channels=in_channels, kwargs=given
    )
    aux = bool(options.get("aux_loss", False))
    backbone = tv_resnet.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    if weights_backbone is not None and pretrained is None:
        imagenet, _ = weights_for(
            "resnet50", weights_backbone, num_classes=1000, in_channels=in_channels, kwargs={}
        )
        assert imagenet is not None
        backbone.load_state_dict(read_weights(imagenet))  # dilation changes no shape: the keys fit
    if in_channels != 3:
        backbone.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
    layers = {"layer4": "out", "layer3": "aux"} if aux else {"layer4": "out"}
    model = TorchvisionFCN(
        IntermediateLayerGetter(backbone, return_layers=layers),
        FCNHead(2048, num_classes),
        FCNHead(1024, num_classes) if aux else None,
        in_channels=in_channels,
    )
    return load_weights(model, pretrained)
