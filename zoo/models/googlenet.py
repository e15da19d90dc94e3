"""GoogLeNet (Inception v1) in torchvision's form, with an optional small-image stem.

Reference: C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, V. Vanhoucke and
A. Rabinovich, "Going Deeper with Convolutions", arXiv:1409.4842, 2014 (Table 1 gives the inception
blocks' widths).

Like torchvision, and unlike the paper, every convolution is bias-free and followed by batch
normalisation (eps 0.001) and ReLU, and the "5x5" branch of each inception block is a 3x3 convolution
(a known slip kept for compatibility, pytorch/vision#906). Keeping both makes the parameter count
(6,624,904 at 1000 classes without auxiliary heads) and the ``state_dict`` keys match
``torchvision.models.googlenet``, so its weights load through :func:`from_torchvision`.

Two stems, chosen with ``stem=`` as for ResNet (the classifier is the same for both):

* ``"imagenet"``: the paper's stem, 7x7/2 convolution, max-pool, 1x1 and 3x3 convolutions, max-pool,
  which takes a 224x224 image to 192x28x28 (any input of at least 15x15 works).
* ``"cifar"``: the stem of kuangliu/pytorch-cifar's GoogLeNet, one 3x3 convolution to 192 channels, so
  a 32x32 image enters ``inception3a`` at 32x32; the inception blocks and the pools between stages are
  unchanged. Global average pooling makes 28x28 input work too.

Auxiliary heads (``aux_logits=True``) never change what ``forward`` returns: it always gives the main
logits. :meth:`GoogLeNet.forward_aux` returns the main and both auxiliary logits, for a training step
that adds the paper's auxiliary losses (weighted 0.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
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
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "from_torchvision",
    "googlenet",
]

# Inception blocks (paper's Table 1): in channels, then the out channels of the 1x1 branch, the 3x3
# branch's 1x1 reduction and 3x3, the "5x5" branch's reduction and convolution, and the pool projection.
cfgs: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}

# The statistics torchvision's ImageNet weights were normalised with; ``transform_input`` undoes them.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_AUX_PREFIXES = ("aux1.", "aux2.")


class GoogLeNetOutputs(NamedTuple):
    """What :meth:`GoogLeNet.forward_aux` returns: three ``(B, num_classes)`` logits."""

    logits: torch.Tensor
    aux1: torch.Tensor  # from the output of inception4a
    aux2: torch.Tensor  # from the output of inception4d


class BasicConv2d(nn.Module):
    """Bias-free convolution → ``BatchNorm2d(eps=0.001)`` → ReLU; ``kwargs`` go to ``nn.Conv2d``.

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, out_channels, H', W')`` as the convolution gives.
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised, rectified convolution of ``x``."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated along channels: 1x1; 1x1→3x3; 1x1→"5x5"; 3x3 max-pool→1x1.

    The "5x5" branch uses a 3x3 kernel, as torchvision's does (see the module docstring).

    Args:
        in_channels: Channels of the input.
        ch1x1: Out channels of the 1x1 branch.
        ch3x3red: Out channels of the 1x1 reduction before the 3x3 convolution.
        ch3x3: Out channels of the 3x3 branch.
        ch5x5red: Out channels of the 1x1 reduction before the "5x5" convolution.
        ch5x5: Out channels of the "5x5" branch.
        pool_proj: Out channels of the 1x1 projection after the max-pool.

    Shape:
        Input ``(B, in_channels, H, W)``; output ``(B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),  # 5x5 in the paper
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The four branches' outputs, concatenated along channels."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: average pool to 4x4 → 1x1 conv 128 → Linear 1024 → ReLU → Dropout → Linear.

    Args:
        in_channels: Channels of the inception block output it reads.
        num_classes: Number of output logits.
        dropout: Dropout probability before the last layer (0.7 in the paper).

    Shape:
        Input ``(B, in_channels, H, W)`` for any ``H, W``; output logits ``(B, num_classes)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from an intermediate feature map."""
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(Backbone):
    """GoogLeNet: a stem, nine inception blocks in three stages, global average pooling, ``fc``.

    The modules keep torchvision's flat names (``conv1`` … ``inception5b``, ``aux1``, ``aux2``,
    ``avgpool``, ``dropout``, ``fc``) instead of ``features``/``classifier``, so torchvision's state
    dict loads; :meth:`forward_features` and :meth:`forward_head` are overridden accordingly. With the
    ``"cifar"`` stem ``conv1`` is its 3x3 convolution and ``maxpool1``, ``conv2``, ``conv3``, ``maxpool2`` are
    identities. Weights start as in torchvision: truncated ``N(0, 0.01)`` convolution and linear
    weights, unit/zero batch-norm affine parameters.

    Args:
        num_classes: Number of output logits.
        in_channels: Channels of the input images.
        stem: ``"imagenet"`` (the paper's) or ``"cifar"`` (one 3x3 convolution, keeping 32x32 resolution).
        aux_logits: Build the two auxiliary classifiers ``aux1`` and ``aux2``; they run only in
            :meth:`forward_aux`, never in ``forward``.
        transform_input: Map ImageNet-normalised images to the ``[-1, 1]`` scaling that torchvision's
            ImageNet weights expect (needs 3 input channels).
        dropout: Dropout probability before ``fc``.
        dropout_aux: Dropout probability inside the auxiliary classifiers.

    Shape:
        Input ``(B, in_channels, H, W)``: 224x224 for the ``"imagenet"`` stem, where
        ``forward_features`` gives ``(B, 1024, 7, 7)``; 32x32 or 28x28 for the ``"cifar"`` stem, where it
        gives ``(B, 1024, 8, 8)`` or ``(B, 1024, 7, 7)``. ``forward`` gives logits ``(B, num_classes)``.
    """

    head_name: ClassVar[str] = "fc"

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        stem: Literal["imagenet", "cifar"] = "imagenet",
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(
                f"transform_input re-normalises RGB images and needs in_channels=3, not {in_channels}"
            )
        self.transform_input = transform_input
        self.num_features = 1024

        self.conv1: nn.Module
        self.maxpool1: nn.Module
        self.conv2: nn.Module
        self.conv3: nn.Module
        self.maxpool2: nn.Module
        if stem == "imagenet":
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, kernel_size=1)
            self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        elif stem == "cifar":
            self.conv1 = BasicConv2d(in_channels, 192, kernel_size=3, padding=1)
            self.maxpool1, self.conv2, self.conv3, self.maxpool2 = (nn.Identity() for _ in range(4))
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', not '{stem}'")

        self.inception3a = Inception(*cfgs["inception3a"])
        self.inception3b = Inception(*cfgs["inception3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(*cfgs["inception4a"])
        self.inception4b = Inception(*cfgs["inception4b"])
        self.inception4c = Inception(*cfgs["inception4c"])
        self.inception4d = Inception(*cfgs["inception4d"])
        self.inception4e = Inception(*cfgs["inception4e"])
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(*cfgs["inception5a"])
        self.inception5b = Inception(*cfgs["inception5b"])

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(cfgs["inception4b"][0], num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(cfgs["inception4e"][0], num_classes, dropout=dropout_aux)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def aux_logits(self) -> bool:
        """Whether the network has auxiliary classifiers (``aux1`` and ``aux2``)."""
        return self.aux1 is not None

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return (x * std + mean - 0.5) / 0.5  # back to [0, 1] pixels, then normalised by mean = std = 0.5

    def _features(self, x: torch.Tensor, *, aux: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last feature map, and the auxiliary logits ``[aux1, aux2]`` when ``aux`` (else ``[]``)."""
        aux_out: list[torch.Tensor] = []
        x = self._transform_input(x)
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if aux and self.aux1 is not None:
            aux_out.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if aux and self.aux2 is not None:
            aux_out.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x)), aux_out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of ``inception5b``, ``(B, 1024, h, w)``, for images ``(B, C, H, W)``."""
        return self._features(x)[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the last feature map ``(B, 1024, h, w)``."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    def forward_aux(self, x: torch.Tensor) -> GoogLeNetOutputs:
        """Main and auxiliary logits, each ``(B, num_classes)``, of images ``(B, C, H, W)``.

        The auxiliary heads run in both training and evaluation mode; the paper adds their
        cross-entropy losses, weighted 0.3, to the main loss during training and discards them for
        inference.

        Raises:
            RuntimeError: The network was built without auxiliary heads (``aux_logits=False``).
        """
        if not self.aux_logits:
            raise RuntimeError("this GoogLeNet has no auxiliary heads: build it with aux_logits=True")
        features, (aux1, aux2) = self._features(x, aux=True)
        return GoogLeNetOutputs(self.forward_head(features), aux1, aux2)


def from_torchvision(
    state_dict: Mapping[str, torch.Tensor], *, aux_logits: bool = False
) -> dict[str, torch.Tensor]:
    """A ``torchvision.models.googlenet`` state dict as one for :class:`GoogLeNet` with the ``"imagenet"`` stem.

    The module names are the same; the auxiliary heads' weights (``aux1.*``, ``aux2.*``, present in
    torchvision's ImageNet checkpoint) are kept for a network built with ``aux_logits=True`` and
    dropped otherwise.

    Args:
        state_dict: torchvision's state dict.
        aux_logits: Whether the network that will load it has auxiliary heads.

    Raises:
        ValueError: ``aux_logits`` is true but ``state_dict`` has no auxiliary-head weights.
    """
    if not aux_logits:
        return {k: v for k, v in state_dict.items() if not k.startswith(_AUX_PREFIXES)}
    if not any(k.startswith(_AUX_PREFIXES) for k in state_dict):
        raise ValueError(
            "the state dict has no auxiliary-head weights (aux1.*, aux2.*) to load with aux_logits=True"
        )
    return dict(state_dict)


register_weights(
    Weights(
        model="googlenet",
        tag="imagenet",
        url="https://download.pytorch.org/models/googlenet-1378be20.pth",
        sha256="1378be20",
        num_classes=1000,
        metrics={"imagenet_top1": 69.778, "imagenet_top5": 89.53},
        preprocess=IMAGENET_PREPROCESS,
        categories=imagenet_categories(),
        model_kwargs={"stem": "imagenet", "transform_input": True},  # transform_input: as torchvision does
        convert=from_torchvision,
        source="torchvision IMAGENET1K_V1",
    )
)


def _googlenet(
    name: str, *, num_classes: int, in_channels: int, weights: str | None, **kwargs: Any
) -> GoogLeNet:
    pretrained, kwargs = weights_for(
        name, weights, num_classes=num_classes, in_channels=in_channels, kwargs=kwargs, adapt=True
    )
    if pretrained is None:
        return GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
    # the file holds the auxiliary heads too; keep them only for a network that has them
    convert = partial(from_torchvision, aux_logits=bool(kwargs.get("aux_logits", False)))
    model = GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)
    return load_weights(model, pretrained, convert=convert)


@register_model
def googlenet(
    *, num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any
) -> GoogLeNet:
    """GoogLeNet; ``stem``, ``aux_logits``, ``transform_input``, ``dropout`` and ``dropout_aux`` go to :class:`GoogLeNet`."""
    return _googlenet(
        "googlenet", num_classes=num_classes, in_channels=in_channels, weights=weights, **kwargs
    )
