"""The record of one set of pretrained weights: where the file is, what it reached, how to feed it.

:mod:`zoo.models.weights` keeps the table of registered records and loads them; this module is the record
itself, with the class names of the datasets the shipped weights were trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from zoo.models.preprocess import Preprocess
from zoo.models.weights_files import StateDict, WeightsError

__all__ = ["FASHIONMNIST_CATEGORIES", "Weights", "imagenet_categories", "torchvision_categories"]

#: Fashion-MNIST's ten classes in label order (Xiao et al. 2017), as its shipped weights predict them
FASHIONMNIST_CATEGORIES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def torchvision_categories(dataset: Literal["imagenet", "coco", "voc"]) -> tuple[str, ...]:
    """Class names in label order, as torchvision's weights list them.

    Args:
        dataset: ``"imagenet"`` (ImageNet-1k, 1000 names), ``"coco"`` (COCO detection ids 0-90: ``__background__``
            first and ``N/A`` for unused ids) or ``"voc"`` (Pascal VOC segmentation: ``__background__`` and 20).
    """
    from torchvision.models import _meta

    return tuple(getattr(_meta, f"_{dataset.upper()}_CATEGORIES"))


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in label order, as torchvision lists them."""
    return torchvision_categories("imagenet")


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for one registered model: where they are, what they reached, how to use them.

    The record :func:`get_weights` returns, and the one a network built with weights carries as
    ``pretrained_cfg`` (then describing that network: see :attr:`adapted`).

    Attributes:
        model: The registered model name the weights are for (``"resnet18"``).
        tag: The name users ask for (``create_model("resnet18", weights="imagenet")``).
        sha256: Hex SHA-256 of the file, or its leading digits where only those are published
            (torchvision puts the first 8 or more in its file names).
        num_classes: Output logits the weights were trained with (the builder's default ``num_classes``).
        in_channels: Input channels the weights were trained with.
        url: Download address, for weights too big for the wheel.
        file: Path of a file shipped in the wheel, relative to this package's ``weights/`` folder (or the
            absolute path of a user's file).
        metrics: What the weights reached, e.g. ``{"imagenet_top1": 69.758}``.
        preprocess: How to prepare images for them (see :meth:`transforms`).
        categories: The class names in label order (``None``: not known, or a fresh head predicts other classes).
        model_kwargs: Builder options the weights need (GoogLeNet's ``transform_input``).
        convert: Maps the file's state dict onto our module's keys (``None``: keys already match).
        source: Where the weights come from.
        adapted: What loading changed to fit the network asked for, one line each (``"head replaced: 10 → 5
            classes, untrained"``); empty when the network computes what the weights were trained to.
    """

    model: str
    tag: str
    sha256: str
    num_classes: int
    in_channels: int = 3
    url: str | None = None
    file: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    preprocess: Preprocess | None = None
    categories: tuple[str, ...] | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    convert: Callable[[StateDict], StateDict] | None = None
    source: str = ""
    adapted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.categories is not None and len(self.categories) != self.num_classes:
            raise ValueError(
                f"weights '{self.name}' have {self.num_classes} classes but {len(self.categories)} categories"
            )
        if self.preprocess is not None and self.preprocess.channels != self.in_channels:
            raise ValueError(
                f"weights '{self.name}' take {self.in_channels} channels but their preprocess makes "
                f"{self.preprocess.channels}"
            )

    @property
    def name(self) -> str:
        """``model.tag``, the form :func:`list_weights` gives; the reference itself for a user's file or artifact."""
        if (self.file is not None and Path(self.file).is_absolute()) or self.tag.startswith("wandb:"):
            return self.tag
        return f"{self.model}.{self.tag}"

    def with_new_head(self, num_classes: int) -> Weights:
        """This record for a network whose classifier was replaced by a fresh, untrained one for ``num_classes``
        classes: its categories and metrics no longer hold."""
        change = f"head replaced: {self.num_classes} → {num_classes} classes, untrained"
        return replace(
            self, num_classes=num_classes, categories=None, metrics={}, adapted=(*self.adapted, change)
        )

    def with_input_channels(self, in_channels: int, conv: str) -> Weights:
        """This record for a network whose first convolution ``conv`` was adapted to ``in_channels`` channels."""
        change = f"first convolution {conv} adapted from {self.in_channels} to {in_channels} input channels"
        preprocess = None if self.preprocess is None else self.preprocess.with_channels(in_channels)
        return replace(self, in_channels=in_channels, preprocess=preprocess, adapted=(*self.adapted, change))

    def transforms(self) -> Callable[[Any], Tensor]:
        """What turns one image (PIL, NumPy ``(H, W, C)`` or tensor ``(C, H, W)``, any size and mode) into the
        normalised float tensor ``(in_channels, crop, crop)`` the network takes; see :class:`Preprocess`.

        Raises:
            WeightsError: The weights do not say how their images were prepared.
        """
        if self.preprocess is None:
            raise WeightsError(
                f"weights '{self.name}' do not say how images were prepared for them (no preprocess)"
            )
        return self.preprocess.transforms()
