"""Pretrained weights as data: where a file lives, its hash, what it reached and how to feed it.

Each family module declares its weights beside its builders (``register_weights(Weights(...))``) and
its builder calls :func:`weights_for` then :func:`load_weights`. A tag names a registered set of weights, a
checkpoint of a zoo run or a W&B artifact holding one. Getting the file (shipped in the wheel or downloaded
once), checking its SHA-256 and reading it without unpickling code is :mod:`zoo.models.weights_files`.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.models.weights_files import (
    SHIPPED,
    StateDict,
    WeightsError,
    download_artifact,
    fetch,
    local_path,
    read_state_dict,
    weights_dir,
)

__all__ = [
    "FASHIONMNIST_PREPROCESS",
    "IMAGENET_PREPROCESS",
    "SHIPPED",
    "Preprocess",
    "UnknownWeightsError",
    "Weights",
    "WeightsError",
    "find_weights",
    "imagenet_categories",
    "list_weights",
    "load_weights",
    "read_weights",
    "register_weights",
    "weights_dir",
    "weights_for",
]

M = TypeVar("M", bound=nn.Module)


class UnknownWeightsError(ZooError, ValueError):
    """A builder was asked for pretrained weights it does not have, or for options they cannot fit."""


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for a set of weights (resize, centre crop, normalise).

    Attributes:
        resize: Side the shorter image edge is resized to.
        crop: Side of the centre crop fed to the network.
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided by after that.
    """

    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def transforms(self) -> Callable[[Any], Tensor]:
        """A torchvision v2 pipeline turning a PIL image or uint8 tensor into the network's input."""
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(self.resize, antialias=True),
                v2.CenterCrop(self.crop),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=list(self.mean), std=list(self.std)),
            ]
        )


IMAGENET_PREPROCESS = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
#: Fashion-MNIST as zoo's recipes feed it: statistics of the 55,000 training images left after the default split
FASHIONMNIST_PREPROCESS = Preprocess(resize=28, crop=28, mean=(0.2859,), std=(0.3529,))


def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in label order, as torchvision lists them."""
    from torchvision.models import _meta

    return tuple(_meta._IMAGENET_CATEGORIES)


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for one registered model.

    Attributes:
        model: The registered model name the weights are for (``"resnet18"``).
        tag: The name users ask for (``create_model("resnet18", weights="imagenet")``).
        sha256: Hex SHA-256 of the file, or its leading digits where only those are published
            (torchvision puts the first 8 or more in its file names).
        num_classes: Output logits the weights were trained with; fixes the builder's ``num_classes``.
        in_channels: Input channels the weights were trained with.
        url: Download address, for weights too big for the wheel.
        file: Path of a file shipped in the wheel, relative to this package's ``weights/`` folder.
        metrics: What the weights reached, e.g. ``{"imagenet_top1": 69.758}``.
        preprocess: How to prepare images for them.
        model_kwargs: Builder options the weights need (GoogLeNet's ``transform_input``).
        convert: Maps the file's state dict onto our module's keys (``None``: keys already match).
        source: Where the weights come from.
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
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    convert: Callable[[StateDict], StateDict] | None = None
    source: str = ""

    @property
    def name(self) -> str:
        """``model.tag``, the form :func:`list_weights` gives."""
        return f"{self.model}.{self.tag}"


_WEIGHTS: dict[str, dict[str, Weights]] = {}


def register_weights(weights: Weights) -> Weights:
    """Declare a set of pretrained weights; a second set with the same model and tag raises ``ValueError``."""
    if (weights.url is None) == (weights.file is None):
        raise ValueError(f"weights '{weights.name}' need exactly one of url and file")
    tags = _WEIGHTS.setdefault(weights.model, {})
    if weights.tag in tags:
        raise ValueError(f"weights '{weights.name}' are already registered")
    tags[weights.tag] = weights
    return weights


def list_weights(pattern: str = "*") -> list[str]:
    """Names ``model.tag`` of the pretrained weights whose model or full name matches a shell pattern.

    Args:
        pattern: An ``fnmatch`` pattern, e.g. ``"resnet*"`` or ``"*.imagenet"``.
    """
    names = [w.name for tags in _WEIGHTS.values() for w in tags.values()]
    return sorted(
        n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n.split(".")[0], pattern)
    )


def find_weights(model: str, tag: str) -> Weights:
    """The weights ``tag`` names for ``model``: a registered tag, a zoo checkpoint path or a W&B reference.

    Args:
        model: The registered model name.
        tag: A tag from :func:`list_weights` (``"imagenet"``), the path of a checkpoint written by
            ``python -m zoo.fit`` (``runs/lenet5_fashionmnist/.../best.ckpt``), or a W&B model artifact
            ``"wandb:ENTITY/PROJECT/NAME:VERSION"`` holding one.

    Raises:
        UnknownWeightsError: No weights of that tag.
        WeightsError: The checkpoint or artifact cannot be had, or is for another model.
    """
    if tag.startswith(WANDB_PREFIX):
        return _from_checkpoint(model, download_artifact(tag.removeprefix(WANDB_PREFIX)), tag)
    if tag.endswith(".ckpt") or os.sep in tag:
        return _from_checkpoint(model, Path(tag), tag)
    available = _WEIGHTS.get(model, {})
    if tag not in available:
        names = ", ".join(sorted(available)) or "none"
        raise UnknownWeightsError(
            f"model '{model}' has no pretrained weights named '{tag}' (available: {names})"
        )
    return available[tag]


def weights_for(
    model: str, tag: str | None, *, num_classes: int, in_channels: int, kwargs: dict[str, Any]
) -> tuple[Weights | None, dict[str, Any]]:
    """The weights a builder was asked for, checked against its other arguments, and the options they need.

    Shipped LeNet-5 weights were trained with ``activation="relu"``: ``lenet5(weights=..., activation="tanh")``
    would load without complaint yet compute something else, so a conflicting option is refused. The file is
    fetched here, before the builder spends time on a network that could not be loaded.

    Args:
        model: The registered model name.
        tag: What :func:`find_weights` takes, or ``None`` for random initialisation.
        num_classes: The builder's ``num_classes``; must equal the weights'.
        in_channels: The builder's ``in_channels``; must equal the weights'.
        kwargs: The builder's other options.

    Returns:
        The :class:`Weights` (``None`` when ``tag`` is ``None``) and ``kwargs`` with the options they need.

    Raises:
        UnknownWeightsError: No weights of that tag, or the classes, channels or options disagree.
        WeightsError: The file, checkpoint or artifact cannot be had.
    """
    if tag is None:
        return None, kwargs
    weights = find_weights(model, tag)
    for what, given, fixed in (
        ("num_classes", num_classes, weights.num_classes),
        ("in_channels", in_channels, weights.in_channels),
    ):
        if given != fixed:
            raise UnknownWeightsError(
                f"weights '{weights.name}' have {what}={fixed}, not {given}: build with {what}={fixed} "
                "(then replace the head to train on other classes)"
            )
    for key, value in weights.model_kwargs.items():
        if key in kwargs and kwargs[key] != value:
            raise UnknownWeightsError(f"weights '{weights.name}' need {key}={value!r}, not {kwargs[key]!r}")
    _ensure_local(weights)
    return weights, {**weights.model_kwargs, **kwargs}


WANDB_PREFIX = "wandb:"

_PREFIX = "net."  # where a task keeps its network in a checkpoint's state dict


def _from_checkpoint(model: str, path: Path, tag: str) -> Weights:
    """Weights taken from a checkpoint written by ``python -m zoo.fit``: its network, classes and options."""
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    stat = path.stat()  # a rewritten checkpoint (a resumed run's) is read again
    return _checkpoint_weights(model, path, tag, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)  # create_model and then the builder resolve the same tag
def _checkpoint_weights(model: str, path: Path, tag: str, mtime_ns: int, size: int) -> Weights:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hparams = checkpoint["hyper_parameters"]
        trained = str(hparams["model"])
    except Exception as error:  # unpickling refused, not a zoo checkpoint, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"{path} is not a zoo checkpoint that can be read safely: {reason}") from None
    if trained != model:
        raise WeightsError(f"checkpoint {path} holds a '{trained}', not a '{model}'")
    return Weights(
        model=model,
        tag=tag,
        file=str(path.resolve()),
        sha256="",  # no published hash: fetch checks nothing
        num_classes=int(hparams["num_classes"]),
        in_channels=int(hparams["in_channels"]),
        model_kwargs=dict(hparams.get("model_kwargs") or {}),
        convert=_task_state_dict,
        source=f"zoo checkpoint {path}",
    )


def _task_state_dict(state: StateDict) -> StateDict:
    """The network's part of a task's state dict, without the task's ``net.`` prefix."""
    return {k.removeprefix(_PREFIX): v for k, v in state.items() if k.startswith(_PREFIX)}


def load_weights(model: M, weights: Weights | None) -> M:
    """Load pretrained weights into a freshly built network (nothing happens for ``None``).

    Args:
        model: The network the weights' model name builds.
        weights: What :func:`weights_for` returned.

    Returns:
        ``model``, with the weights loaded (strictly: every key must match).

    Raises:
        WeightsError: The file cannot be had, fails its hash check, holds something other than tensors,
            or does not fit the network.
    """
    if weights is None:
        return model
    state = read_weights(weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise WeightsError(f"weights '{weights.name}' do not fit the network: {first}") from None
    return model


def read_weights(weights: Weights) -> StateDict:
    """The state dict of a set of weights, fetched, hash-checked and mapped onto our modules' keys.

    Raises:
        WeightsError: The file cannot be had, fails its hash check or holds something other than tensors.
    """
    state = read_state_dict(_fetch(weights), weights.name)
    return weights.convert(state) if weights.convert is not None else state


def _fetch(weights: Weights) -> Path:
    """The local, hash-checked file of a set of weights, downloading it first when needed."""
    return fetch(weights.name, weights.sha256, url=weights.url, file=weights.file)


def _ensure_local(weights: Weights) -> None:
    """Download a set of weights now when there is no local copy (a missing file raises, saying where)."""
    if not local_path(url=weights.url, file=weights.file).is_file():
        _fetch(weights)
