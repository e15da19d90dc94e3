"""Faster R-CNN: a region proposal network and a Fast R-CNN head sharing one backbone's features.

References: S. Ren, K. He, R. Girshick and J. Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region
Proposal Networks", NIPS 2015, arXiv:1506.01497 (VGG-16, one stride-16 map from conv5_3, anchors of 128, 256 and
512 pixels at three aspect ratios, images resized to 600 pixels on the shorter side); T.-Y. Lin et al., "Feature
Pyramid Networks for Object Detection", CVPR 2017, arXiv:1612.03144 (the FPN over ResNet stages 2-5 with one
anchor size per level). The detector itself is torchvision's ``FasterRCNN``: its transform (resize, normalise),
RPN, RoIAlign, two-layer box head and box predictor. The backbones it sits on are built from the registry's own
networks in :mod:`zoo.models.detection_backbones`; this file is one concern in some 500 lines: the builders of
the five registered detectors.

Conventions, torchvision's: ``num_classes`` counts the background (label 0), so the 20 VOC classes make 21;
images go in as a list of ``(3, H, W)`` float tensors in 0..1, not normalised (the model normalises with
``image_mean``/``image_std`` and resizes so the shorter side is ``min_size``, the longer at most ``max_size``).
In training mode ``model(images, targets)`` returns the dict of losses (``loss_classifier``, ``loss_box_reg``,
``loss_objectness``, ``loss_rpn_box_reg``); in evaluation mode ``model(images)`` returns one dict per image with
``boxes`` ``(N, 4)`` ``XYXY`` in pixels of that image, ``labels`` ``(N,)`` 1-based and ``scores`` ``(N,)``.

Backbones start from the registry's ImageNet weights with ``weights_backbone="imagenet"``. As in torchvision, a
pretrained backbone's batch norms are frozen and only its last ``trainable_backbone_layers`` stages train (3 by
default); a backbone trained from scratch keeps ordinary batch norms and trains whole.

Registered:

* ``fasterrcnn_resnet50_fpn``: torchvision's model of the same name, module for module (same ``state_dict`` keys
  and 41,755,286 parameters at 91 classes), built on our ResNet-50; ``weights="coco"`` loads torchvision's COCO
  weights (box AP 37.0 on COCO val2017) unchanged.
* ``fasterrcnn_resnet18_fpn``: the same on ResNet-18 (no published detector weights).
* ``fasterrcnn_vgg16``: Ren et al.'s VGG-16 detector: conv5_3 features, their anchors and proposal counts, and
  a 4096-wide box head that starts from VGG-16's fc6 and fc7 when the backbone is pretrained. RoIAlign replaces
  the paper's RoI max-pooling and the box head has no dropout (torchvision's ``TwoMLPHead``).
* ``fasterrcnn_mobilenet_v3_large_fpn`` and ``fasterrcnn_mobilenet_v3_large_320_fpn``: torchvision's MobileNetV3
  detectors, assembled from torchvision's parts as its builders do (same keys and parameter counts);
  ``weights="coco"`` loads its COCO weights (box AP 32.8 and 22.8).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d

from zoo.models.detection_backbones import (
    MOBILENET_V3_LARGE_IMAGENET,
    ResNetBody,
    ResNetFPN,
    VGGConv5,
    freeze_batch_norm,
    mobilenet_fpn_extractor,
    resnet_fpn_extractor,
    trainable_layers,
    vgg_conv5_extractor,
)
from zoo.models.registry import create_model, register_model, unknown_option
from zoo.models.resnet import ResNet
from zoo.models.vgg import VGG
from zoo.models.weights import (
    IMAGENET_PREPROCESS,
    UnknownWeightsError,
    Weights,
    load_weights,
    register_weights,
    torchvision_categories,
    weights_for,
)

__all__ = [
    "ResNetBody",
    "ResNetFPN",
    "VGGConv5",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet18_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_vgg16",
    "freeze_batch_norm",
]

# The registered detector -> the registered backbone it is built on.
cfgs: dict[str, str] = {
    "fasterrcnn_resnet18_fpn": "resnet18",
    "fasterrcnn_resnet50_fpn": "resnet50",
    "fasterrcnn_vgg16": "vgg16",
}

#: Ren et al.'s settings for the VGG-16 detector (section 3.3 and their released code's test settings)
_VGG_DEFAULTS: dict[str, Any] = {
    "min_size": 600,
    "max_size": 1000,
    "rpn_pre_nms_top_n_test": 6000,
    "rpn_post_nms_top_n_test": 300,
    "box_batch_size_per_image": 128,
}
#: torchvision's settings for its two MobileNetV3 detectors
_MOBILENET_DEFAULTS: dict[str, dict[str, Any]] = {
    "fasterrcnn_mobilenet_v3_large_fpn": {"rpn_score_thresh": 0.05},
    "fasterrcnn_mobilenet_v3_large_320_fpn": {
        "min_size": 320,
        "max_size": 640,
        "rpn_pre_nms_top_n_test": 150,
        "rpn_post_nms_top_n_test": 150,
        "rpn_score_thresh": 0.05,
    },
}
#: options of torchvision's ``FasterRCNN`` (and of its transform) that the builders pass on; anything else is a
#: mistake that torchvision would swallow silently, so the builders refuse it
_FASTER_RCNN_OPTIONS = frozenset(inspect.signature(FasterRCNN.__init__).parameters) - {
    "self",
    "backbone",
    "num_classes",
    "kwargs",
    "rpn_anchor_generator",
    "rpn_head",
    "box_roi_pool",
    "box_head",
    "box_predictor",
} | {"size_divisible", "fixed_size"}

#: the options the ResNet-FPN builders read themselves, before passing the rest on to torchvision's ``FasterRCNN``
_RESNET_FPN_OPTIONS = ("returned_layers", "fpn_channels", "representation_size", "anchor_sizes", "aspect_ratios",
                       "frozen_bn_eps")  # fmt: skip


def _check_options(name: str, kwargs: dict[str, Any], own: Sequence[str] = ()) -> None:
    """Refuse what is left in ``kwargs`` that torchvision's ``FasterRCNN`` does not take; ``own`` names the options
    the builder has taken out of them already (for the message)."""
    unknown = sorted(set(kwargs) - _FASTER_RCNN_OPTIONS)
    if unknown:
        takes = [*_FASTER_RCNN_OPTIONS, *own, "weights_backbone", "trainable_backbone_layers"]
        raise ValueError(unknown_option(name, unknown[0], takes))


def _normalisation(in_channels: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``image_mean`` and ``image_std``: ImageNet's for RGB images, which is what the pretrained backbones expect."""
    if in_channels == 3:
        return {
            "image_mean": list(kwargs.pop("image_mean", IMAGENET_PREPROCESS.mean)),
            "image_std": list(kwargs.pop("image_std", IMAGENET_PREPROCESS.std)),
        }
    mean, std = kwargs.pop("image_mean", None), kwargs.pop("image_std", None)
    if mean is None or std is None or len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"with in_channels={in_channels}, give image_mean and image_std of {in_channels} values"
        )
    return {"image_mean": list(mean), "image_std": list(std)}


def _anchors(
    sizes: Sequence[Any] | None,
    ratios: Sequence[Any] | None,
    *,
    levels: int,
    default_sizes: tuple[tuple[int, ...], ...],
) -> AnchorGenerator:
    """An ``AnchorGenerator`` for ``levels`` feature maps.

    Args:
        sizes: one list of sizes (pixels) per map, or a flat list giving one size per map; None for the default.
        ratios: one list of aspect ratios for every map, or one list per map; None for ``[0.5, 1.0, 2.0]``.
        levels: the number of feature maps.
        default_sizes: the sizes used when ``sizes`` is None.
    """
    per_level = default_sizes if sizes is None else tuple(_floats(s, int) for s in sizes)
    ratios = (0.5, 1.0, 2.0) if ratios is None else ratios
    aspect = (
        tuple(_floats(r, float) for r in ratios)
        if all(isinstance(r, Sequence) for r in ratios)
        else (_floats(ratios, float),)
    )
    aspect = aspect * levels if len(aspect) == 1 else aspect
    if len(per_level) != levels or len(aspect) != levels:
        raise ValueError(
            f"anchor_sizes and aspect_ratios need one entry per feature map ({levels}), "
            f"got {len(per_level)} and {len(aspect)}"
        )
    if len({len(s) * len(r) for s, r in zip(per_level, aspect, strict=True)}) != 1:
        raise ValueError("every feature map needs the same number of anchors (sizes x aspect ratios)")
    return AnchorGenerator(per_level, aspect)


def _floats(value: Any, kind: type) -> tuple[Any, ...]:
    """``value`` (a number or a list of numbers, from a recipe) as a tuple of ``kind``."""
    return tuple(kind(v) for v in value) if isinstance(value, Sequence) else (kind(value),)


def _faster_rcnn(
    backbone: nn.Module,
    *,
    num_classes: int,
    featmap_names: list[str],
    anchors: AnchorGenerator,
    representation_size: int,
    **kwargs: Any,
) -> FasterRCNN:
    """torchvision's ``FasterRCNN`` on ``backbone``, with its box head and predictor built here for their width."""
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background too, so it is at least 2, got {num_classes}")
    out_channels: int = backbone.out_channels  # type: ignore[assignment]
    roi_pool = MultiScaleRoIAlign(featmap_names=featmap_names, output_size=7, sampling_ratio=2)
    return FasterRCNN(
        backbone,
        num_classes=None,  # torchvision takes it only when it builds the predictor itself
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=TwoMLPHead(out_channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        **kwargs,
    )


def _set_eps(model: nn.Module, eps: float | None) -> None:
    # torchvision's COCO weights for fasterrcnn_resnet50_fpn were trained with eps=0 in the frozen batch norms
    if eps is None:
        return
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = eps


def _resnet_fpn(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    weights: str | None,
    weights_backbone: str | None,
    trainable_backbone_layers: int | None,
    **kwargs: Any,
) -> FasterRCNN:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs
    )
    returned_layers = list(kwargs.pop("returned_layers", [1, 2, 3, 4]))
    fpn_channels = int(kwargs.pop("fpn_channels", 256))
    representation_size = int(kwargs.pop("representation_size", 1024))
    anchor_sizes, aspect_ratios = kwargs.pop("anchor_sizes", None), kwargs.pop("aspect_ratios", None)
    eps = kwargs.pop("frozen_bn_eps", None)
    _check_options(name, kwargs, _RESNET_FPN_OPTIONS)
    normalise = _normalisation(in_channels, kwargs)
    if (
        not returned_layers
        or sorted(set(returned_layers)) != returned_layers
        or not set(returned_layers) <= {1, 2, 3, 4}
    ):
        raise ValueError(f"returned_layers must be increasing stages from 1 to 4, got {returned_layers}")
    if pretrained is not None:
        weights_backbone = None  # the detector's weights replace the backbone's anyway
    trained = pretrained is not None or weights_backbone is not None
    layers = trainable_layers(trained, trainable_backbone_layers, 5, 3)

    resnet = create_model(cfgs[name], in_channels=in_channels, weights=weights_backbone)
    assert isinstance(resnet, ResNet)
    backbone = resnet_fpn_extractor(
        resnet,
        returned_layers=returned_layers,
        trainable=layers,
        frozen_bn=trained,
        out_channels=fpn_channels,
    )
    levels = len(returned_layers) + 1  # and the max-pooled level on top
    anchors = _anchors(
        anchor_sizes, aspect_ratios, levels=levels, default_sizes=tuple((32 * 2**i,) for i in range(levels))
    )
    model = _faster_rcnn(
        backbone,
        num_classes=num_classes,
        featmap_names=[str(i) for i in range(len(returned_layers))],
        anchors=anchors,
        representation_size=representation_size,
        **normalise,
        **kwargs,
    )
    model = load_weights(model, pretrained)
    _set_eps(model, eps)
    return model


@register_model
def fasterrcnn_resnet18_fpn(
    *,
    num_classes: int = 91,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN with a feature pyramid over ResNet-18's four stages (Lin et al. 2017).

    Args:
        num_classes: object classes plus the background.
        in_channels: channels of the images (3; other counts need ``image_mean`` and ``image_std``).
        weights: weights of the whole detector: a zoo checkpoint path or ``wandb:`` reference (none published).
        weights_backbone: the registry's weights for ``resnet18`` (``"imagenet"``); None trains from scratch.
        trainable_backbone_layers: backbone stages that train, from the top (0 to 5; 3 when pretrained).
        **kwargs: ``returned_layers`` (stages feeding the pyramid, default ``[1, 2, 3, 4]``), ``fpn_channels``
            (256), ``representation_size`` (box head width, 1024), ``anchor_sizes`` (one list per map, default
            32 to 512), ``aspect_ratios`` (``[0.5, 1.0, 2.0]``), and torchvision ``FasterRCNN`` options
            (``min_size``, ``max_size``, ``rpn_*``, ``box_*``...).
    """
    return _resnet_fpn(
        "fasterrcnn_resnet18_fpn",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        **kwargs,
    )


@register_model
def fasterrcnn_resnet50_fpn(
    *,
    num_classes: int = 91,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN ResNet-50 FPN, torchvision's ``fasterrcnn_resnet50_fpn`` built on our ResNet-50.

    ``weights="coco"`` loads torchvision's COCO weights (91 classes, box AP 37.0 on val2017). Arguments as
    :func:`fasterrcnn_resnet18_fpn`; ``weights_backbone`` may be ``"imagenet"`` or ``"imagenet_v2"``.
    """
    return _resnet_fpn(
        "fasterrcnn_resnet50_fpn",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        **kwargs,
    )


register_weights(
    Weights(
        model="fasterrcnn_resnet50_fpn",
        tag="coco",
        url="https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
        sha256="258fb6c6",
        num_classes=91,
        metrics={"coco_val2017_box_map": 37.0},
        categories=torchvision_categories("coco"),
        model_kwargs={"frozen_bn_eps": 0.0},
        source="torchvision FasterRCNN_ResNet50_FPN_Weights.COCO_V1 (keys match ours)",
    )
)


@register_model
def fasterrcnn_vgg16(
    *,
    num_classes: int = 21,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Ren et al.'s Faster R-CNN on VGG-16: conv5_3 (stride 16), anchors of 128, 256, 512 at three ratios.

    Defaults are the paper's: images of 600 pixels on the shorter side (at most 1000 on the longer), 300
    proposals at test time, 128 sampled RoIs per image, and conv3_1 and up training (3 of the 5 stages) when the
    backbone is pretrained; the 4096-wide box head starts from VGG-16's fc6 and fc7 then.

    Args:
        num_classes: object classes plus the background (21 for VOC).
        in_channels: channels of the images (3; other counts need ``image_mean`` and ``image_std``).
        weights: weights of the whole detector: a zoo checkpoint path or ``wandb:`` reference.
        weights_backbone: the registry's weights for ``vgg16`` (``"imagenet"``); None trains from scratch.
        trainable_backbone_layers: convolution stages that train, from the top (0 to 5; 3 when pretrained).
        **kwargs: ``representation_size`` (4096), ``anchor_sizes`` (``[[128, 256, 512]]``), ``aspect_ratios``,
            and torchvision ``FasterRCNN`` options.
    """
    name = "fasterrcnn_vgg16"
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs
    )
    kwargs = {**_VGG_DEFAULTS, **kwargs}
    representation_size = int(kwargs.pop("representation_size", 4096))
    anchor_sizes, aspect_ratios = kwargs.pop("anchor_sizes", None), kwargs.pop("aspect_ratios", None)
    _check_options(name, kwargs, ("representation_size", "anchor_sizes", "aspect_ratios"))
    normalise = _normalisation(in_channels, kwargs)
    if pretrained is not None:
        weights_backbone = None
    trained = pretrained is not None or weights_backbone is not None
    layers = trainable_layers(trained, trainable_backbone_layers, 5, 3)

    vgg = create_model("vgg16", in_channels=in_channels, weights=weights_backbone)
    assert isinstance(vgg, VGG)
    backbone = vgg_conv5_extractor(vgg, trainable=layers)
    anchors = _anchors(anchor_sizes, aspect_ratios, levels=1, default_sizes=((128, 256, 512),))
    model = _faster_rcnn(
        backbone,
        num_classes=num_classes,
        featmap_names=["0"],
        anchors=anchors,
        representation_size=representation_size,
        **normalise,
        **kwargs,
    )
    if weights_backbone is not None and representation_size == 4096:
        # Ren et al. (after Fast R-CNN) start the box head from the classifier's fc6 and fc7; the RoI features
        # are 512 x 7 x 7, flattened as VGG flattens its pooled map, so the weights fit as they are
        head = model.roi_heads.box_head
        assert isinstance(head, TwoMLPHead)
        head.fc6.load_state_dict(vgg.classifier.get_submodule("0").state_dict())
        head.fc7.load_state_dict(vgg.classifier.get_submodule("3").state_dict())
    return load_weights(model, pretrained)


def _mobilenet_fpn(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    weights: str | None,
    weights_backbone: str | None,
    trainable_backbone_layers: int | None,
    **kwargs: Any,
) -> FasterRCNN:
    """torchvision's ``_fasterrcnn_mobilenet_v3_large_fpn``, with the weights fetched and checked by zoo."""
    if in_channels != 3:
        raise ValueError(f"{name} takes RGB images (in_channels=3), not in_channels={in_channels}")
    if weights_backbone not in (None, MOBILENET_V3_LARGE_IMAGENET.tag):
        raise UnknownWeightsError(
            f"{name}'s backbone has no weights named '{weights_backbone}' "
            f"(available: {MOBILENET_V3_LARGE_IMAGENET.tag})"
        )
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs
    )
    kwargs = {**_MOBILENET_DEFAULTS[name], **kwargs}
    _check_options(name, kwargs)
    if pretrained is not None:
        weights_backbone = None
    trained = pretrained is not None or weights_backbone is not None
    layers = trainable_layers(trained, trainable_backbone_layers, 6, 3)
    backbone = mobilenet_fpn_extractor(
        pretrained=weights_backbone is not None, trainable=layers, frozen_bn=trained
    )
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    model = FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors, **kwargs)
    return load_weights(model, pretrained)


@register_model
def fasterrcnn_mobilenet_v3_large_fpn(
    *,
    num_classes: int = 91,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """torchvision's Faster R-CNN MobileNetV3-Large FPN (high resolution; 19,386,354 parameters at 91 classes).

    ``weights="coco"`` loads torchvision's COCO weights (box AP 32.8); ``weights_backbone="imagenet"`` its
    ImageNet MobileNetV3-Large. ``trainable_backbone_layers`` is 0 to 6 (3 when pretrained); ``**kwargs`` are
    torchvision ``FasterRCNN`` options.
    """
    return _mobilenet_fpn(
        "fasterrcnn_mobilenet_v3_large_fpn",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        **kwargs,
    )


@register_model
def fasterrcnn_mobilenet_v3_large_320_fpn(
    *,
    num_classes: int = 91,
    in_channels: int = 3,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """torchvision's low-resolution MobileNetV3-Large FPN detector: images of 320 pixels, 150 proposals.

    ``weights="coco"`` loads torchvision's COCO weights (box AP 22.8). Arguments as
    :func:`fasterrcnn_mobilenet_v3_large_fpn`.
    """
    return _mobilenet_fpn(
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        num_classes=num_classes,
        in_channels=in_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        **kwargs,
    )


for _name, _file, _map in (
    ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth", 32.8),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth", 22.8),
):
    register_weights(
        Weights(
            model=_name,
            tag="coco",
            url=f"https://download.pytorch.org/models/{_file}",
            sha256=_file.rsplit("-", 1)[1].removesuffix(".pth"),
            num_classes=91,
            metrics={"coco_val2017_box_map": _map},
            categories=torchvision_categories("coco"),
            source="torchvision COCO_V1 weights (keys match ours)",
        )
    )
