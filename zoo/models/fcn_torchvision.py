"""torchvision's FCN-ResNet50, so that torchvision's weights load: ``fcn_resnet50``.

Reference: J. Long, E. Shelhamer and T. Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (arXiv:1411.4038). torchvision's FCN puts Long et al.'s head (``FCNHead``) on a ResNet-50 whose last
two stages are dilated (output stride 8), with an optional auxiliary head on ``layer3``. Its module names are
kept, so its COCO-with-VOC-labels weights load unchanged.

As our FCNs (:mod:`zoo.models.fcn`), it takes images in 0..1 and normalises them itself with the ImageNet mean
and standard deviation; ``forward`` returns class logits ``(B, num_classes, H, W)`` at the input's size,
channel 0 the background.
"""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCN as TorchvisionFCNBase
from torchvision.models.segmentation.fcn import FCNHead

from zoo.models.fcn_layers import NormalisedInput
from zoo.models.registry import register_model
from zoo.models.weights import (
    Weights,
    load_weights,
    read_weights,
    register_weights,
    torchvision_categories,
    weights_for,
)

__all__ = ["TorchvisionFCN", "fcn_resnet50"]


class TorchvisionFCN(NormalisedInput, TorchvisionFCNBase):
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
        self.set_normalisation(in_channels)

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
        categories=torchvision_categories("voc"),
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
