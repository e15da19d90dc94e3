"""The backbones Faster R-CNN sits on: the registry's ResNets and VGG-16, and torchvision's MobileNetV3-Large.

References: T.-Y. Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017, arXiv:1612.03144 (the
FPN over ResNet stages 2-5); S. Ren, K. He, R. Girshick and J. Sun, "Faster R-CNN", NIPS 2015, arXiv:1506.01497
(VGG-16's conv5_3 map at stride 16). Each extractor is built by a small function, as torchvision's
``_resnet_fpn_extractor``, and gives what ``FasterRCNN`` reads: a map or a dict of maps, and ``out_channels``.

As in torchvision, a pretrained backbone's batch norms are frozen (``FrozenBatchNorm2d``: fixed statistics and
affine parameters, the usual choice with one or two images per device) and only its last trainable stages train
(:func:`trainable_layers`); a backbone trained from scratch keeps ordinary batch norms and trains whole.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v3_large
from torchvision.models.detection.backbone_utils import _mobilenet_extractor
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from zoo.models.resnet import ResNet
from zoo.models.vgg import VGG
from zoo.models.weights import IMAGENET_PREPROCESS, Weights, imagenet_categories, load_weights

__all__ = [
    "MOBILENET_V3_LARGE_IMAGENET",
    "ResNetBody",
    "ResNetFPN",
    "VGGConv5",
    "freeze_batch_norm",
    "mobilenet_fpn_extractor",
    "resnet_fpn_extractor",
    "trainable_layers",
    "vgg_conv5_extractor",
]

#: torchvision's ImageNet weights of MobileNetV3-Large, the backbone of its MobileNet detectors (not a zoo model)
MOBILENET_V3_LARGE_IMAGENET = Weights(
    model="mobilenet_v3_large",
    tag="imagenet",
    url="https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
    sha256="8738ca79",
    num_classes=1000,
    metrics={"imagenet_top1": 74.042, "imagenet_top5": 91.34},
    preprocess=IMAGENET_PREPROCESS,
    categories=imagenet_categories(),
    source="torchvision MobileNet_V3_Large_Weights.IMAGENET1K_V1",
)


class ResNetBody(nn.Module):
    """The stem and stages of a :class:`~zoo.models.resnet.ResNet`, giving the maps of the chosen stages.

    What torchvision's ``IntermediateLayerGetter`` makes of a ResNet (the same module names: ``conv1``, ``bn1``,
    ``layer1``...), with the stem run in its forward order rather than in registration order. ``avgpool`` and
    ``fc`` are left out, and so are stages after the last one returned.

    Args:
        resnet: the network whose modules are taken (not copied).
        returned_layers: the stages (1 to 4) whose outputs are returned, named ``"0"``, ``"1"``... in order.
    """

    def __init__(self, resnet: ResNet, returned_layers: Sequence[int]) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.stages = [f"layer{i}" for i in range(1, max(returned_layers) + 1)]
        for stage in self.stages:
            self.add_module(stage, getattr(resnet, stage))
        self.returned = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """The returned stages' maps for images ``(B, C, H, W)``; stage ``i`` has stride ``2 ** (i + 1)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: dict[str, Tensor] = OrderedDict()
        for stage in self.stages:
            x = getattr(self, stage)(x)
            if stage in self.returned:
                out[self.returned[stage]] = x
        return out


class ResNetFPN(nn.Module):
    """A ResNet body with a feature pyramid on top: torchvision's ``BackboneWithFPN`` for our ResNet.

    Args:
        body: the stages that feed the pyramid.
        in_channels_list: channels of each returned stage, in order.
        out_channels: channels of every pyramid level.

    Attributes:
        out_channels: what ``FasterRCNN`` reads to size its heads.
    """

    def __init__(self, body: ResNetBody, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels_list, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Pyramid levels ``"0"``... (strides 4, 8, 16, 32 with all four stages) and ``"pool"`` (stride 64)."""
        return self.fpn(self.body(x))


class VGGConv5(nn.Module):
    """VGG's convolutions up to conv5_3 and its ReLU, without the last max-pool: one map at stride 16.

    Args:
        vgg: the network whose ``features`` are taken (not copied), keeping their indices.

    Attributes:
        out_channels: 512, the channels of conv5_3.
    """

    def __init__(self, vgg: VGG) -> None:
        super().__init__()
        layers = list(vgg.features.children())
        if not isinstance(layers[-1], nn.MaxPool2d):
            raise ValueError("expected VGG features ending in a max-pool")
        self.features = nn.Sequential(*layers[:-1])
        self.out_channels = vgg.num_features

    def forward(self, x: Tensor) -> Tensor:
        """The conv5_3 map ``(B, 512, H/16, W/16)`` of images ``(B, C, H, W)``."""
        return self.features(x)


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by a ``FrozenBatchNorm2d`` holding the same statistics.

    torchvision's detectors build pretrained backbones with frozen batch norms: with one or two images per device,
    batch statistics are noise. Returns ``module`` (or the frozen layer, when ``module`` is a batch norm itself).
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        assert module.running_mean is not None and module.running_var is not None
        with torch.no_grad():
            frozen.weight.copy_(module.weight)
            frozen.bias.copy_(module.bias)
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        setattr(module, name, freeze_batch_norm(child))
    return module


def trainable_layers(pretrained: bool, value: int | None, most: int, default: int) -> int:
    """How many backbone stages train, counted from the top: torchvision's rule (``_validate_trainable_layers``).

    A backbone with no pretrained weights trains whole whatever was asked (random features are not worth keeping),
    with a warning when something else was asked.

    Args:
        pretrained: whether the backbone (or the whole detector) starts from trained weights.
        value: what was asked (``trainable_backbone_layers``), None for ``default``.
        most: the backbone's number of stages.
        default: the stages that train when a pretrained backbone is given no ``value``.

    Raises:
        ValueError: ``value`` is not from 0 to ``most``.
    """
    if value is not None and not 0 <= value <= most:
        raise ValueError(f"trainable_backbone_layers must be from 0 to {most}, got {value}")
    if not pretrained:
        if value is not None and value != most:
            warnings.warn(
                f"trainable_backbone_layers={value} has no effect without pretrained weights: all {most} train",
                stacklevel=3,
            )
        return most
    return default if value is None else value


def resnet_fpn_extractor(
    resnet: ResNet, *, returned_layers: list[int], trainable: int, frozen_bn: bool, out_channels: int
) -> ResNetFPN:
    """A feature pyramid over the chosen stages of ``resnet``, its lower stages frozen.

    Args:
        resnet: the network whose modules are taken (not copied).
        returned_layers: increasing stages from 1 to 4 that feed the pyramid.
        trainable: stages that train, from the top (0 to 5: ``layer4`` ... ``layer1``, then ``conv1``).
        frozen_bn: replace the batch norms by ``FrozenBatchNorm2d`` (pretrained weights).
        out_channels: channels of every pyramid level.
    """
    if frozen_bn:
        freeze_batch_norm(resnet)
    body = ResNetBody(resnet, returned_layers)
    # torchvision's choice of stages: the last `trainable` of layer4, layer3, layer2, layer1, conv1 (with bn1)
    training = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable] + (
        ["bn1"] if trainable == 5 else []
    )
    for parameter_name, parameter in body.named_parameters():
        if not parameter_name.startswith(tuple(training)):
            parameter.requires_grad_(False)
    stage1 = resnet.num_features // 8  # layer1's channels: 64 (basic blocks) or 256 (bottlenecks)
    return ResNetFPN(body, [stage1 * 2 ** (i - 1) for i in returned_layers], out_channels)


def vgg_conv5_extractor(vgg: VGG, *, trainable: int) -> VGGConv5:
    """VGG's conv5_3 map, its first ``5 - trainable`` convolution stages frozen (0 to 5 stages train)."""
    backbone = VGGConv5(vgg)
    # the five stages start after each max-pool; the first 5 - trainable of them keep their weights
    starts = [0] + [i + 1 for i, m in enumerate(backbone.features) if isinstance(m, nn.MaxPool2d)]
    frozen = len(backbone.features) if trainable == 0 else starts[5 - trainable]
    for parameter in backbone.features[:frozen].parameters():
        parameter.requires_grad_(False)
    return backbone


def mobilenet_fpn_extractor(*, pretrained: bool, trainable: int, frozen_bn: bool) -> nn.Module:
    """torchvision's MobileNetV3-Large FPN backbone (its ``_mobilenet_extractor``, a ``BackboneWithFPN``).

    Args:
        pretrained: load :data:`MOBILENET_V3_LARGE_IMAGENET`.
        trainable: stages that train, from the top (0 to 6).
        frozen_bn: build with ``FrozenBatchNorm2d`` (pretrained weights, of the backbone or the detector).
    """
    mobilenet = mobilenet_v3_large(
        weights=None, norm_layer=FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    )
    if pretrained:
        load_weights(mobilenet, MOBILENET_V3_LARGE_IMAGENET)
    return _mobilenet_extractor(mobilenet, True, trainable)
