"""Pretrained weights as data: where a file lives, its hash, what it reached and how to feed it.

Each family module declares its weights beside its builders (``register_weights(Weights(...))``) and
its builder calls :func:`weights_for` then :func:`load_weights`. A reference names a registered tag, a file
written by ``zoo export``, a checkpoint of a zoo run or a W&B artifact holding one; :func:`get_weights` gives
its :class:`Weights` record (categories, metrics, ``transforms()``), which a loaded network also carries as
``pretrained_cfg``. Getting the file (shipped in the wheel or downloaded once), checking its SHA-256 and reading
it without unpickling code is :mod:`zoo.models.weights_files`; fitting it to a network built for other
classes or channels is :mod:`zoo.models.adapt`.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from zoo.errors import ZooError
from zoo.models.adapt import FitError, fit_state_dict
from zoo.models.preprocess import FASHIONMNIST_PREPROCESS, IMAGENET_PREPROCESS, Preprocess
from zoo.models.weights_files import (
    SHIPPED,
    StateDict,
    WeightsError,
    fetch,
    local_path,
    read_state_dict,
    weights_dir,
)
from zoo.models.weights_record import (
    FASHIONMNIST_CATEGORIES,
    Weights,
    imagenet_categories,
    torchvision_categories,
)
from zoo.models.weights_sources import WANDB_PREFIX, from_reference, is_reference

__all__ = [
    "FASHIONMNIST_CATEGORIES",
    "FASHIONMNIST_PREPROCESS",
    "IMAGENET_PREPROCESS",
    "SHIPPED",
    "WANDB_PREFIX",
    "Preprocess",
    "UnknownWeightsError",
    "Weights",
    "WeightsError",
    "find_weights",
    "get_weights",
    "imagenet_categories",
    "list_weights",
    "load_weights",
    "read_weights",
    "register_weights",
    "torchvision_categories",
    "weights_dir",
    "weights_for",
]

M = TypeVar("M", bound=nn.Module)


class UnknownWeightsError(ZooError, ValueError):
    """A builder was asked for pretrained weights it does not have, or for options they cannot fit."""


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


def get_weights(name: str) -> Weights:
    """The record of a set of weights: its categories, metrics, ``transforms()``, file and hash.

    Args:
        name: ``MODEL.TAG`` as :func:`list_weights` gives it (``"lenet5.fashionmnist"``), or the path of a
            file written by ``zoo export`` (optionally ``PATH#sha256=<hex>``), of a zoo checkpoint, or a
            ``wandb:`` artifact reference, whose own metadata names the model.

    Raises:
        UnknownWeightsError: No weights of that name.
        WeightsError: The file, checkpoint or artifact cannot be had or read.
    """
    if is_reference(name):
        return find_weights(None, name)
    model, dot, tag = name.partition(".")
    if not dot:
        raise UnknownWeightsError(
            f"'{name}' names no weights: give MODEL.TAG, one of zoo.models.list_weights()"
        )
    return find_weights(model, tag)


def find_weights(model: str | None, tag: str) -> Weights:
    """The weights ``tag`` names for ``model``: a registered tag, an exported file, a checkpoint or a W&B reference.

    Args:
        model: The registered model name; ``None`` takes it from the file (a tag then needs one).
        tag: A tag from :func:`list_weights` (``"imagenet"``); the path of a ``.safetensors`` file written by
            ``zoo export``, checked against ``#sha256=<hex>`` appended to it or a ``PATH.sha256`` file beside it
            when either is given; the path of a checkpoint written by ``zoo fit``
            (``runs/lenet5_fashionmnist/.../best.ckpt``); or a W&B model artifact
            ``"wandb:ENTITY/PROJECT/NAME:VERSION"`` holding one.

    Raises:
        UnknownWeightsError: No weights of that tag.
        WeightsError: The file, checkpoint or artifact cannot be had or read, or is for another model.
    """
    if is_reference(tag):
        return from_reference(model, tag)
    if model is None:
        raise UnknownWeightsError(
            f"weights '{tag}' need a model name, e.g. create_model(NAME, weights='{tag}')"
        )
    available = _WEIGHTS.get(model, {})
    if tag not in available:
        names = ", ".join(sorted(available)) or "none"
        raise UnknownWeightsError(
            f"model '{model}' has no pretrained weights named '{tag}' (available: {names})"
        )
    return available[tag]


def weights_for(
    model: str,
    tag: str | None,
    *,
    num_classes: int,
    in_channels: int,
    kwargs: dict[str, Any],
    adapt: bool = False,
) -> tuple[Weights | None, dict[str, Any]]:
    """The weights a builder was asked for, checked against its other arguments, and the options they need.

    Shipped LeNet-5 weights were trained with ``activation="relu"``: ``lenet5(weights=..., activation="tanh")``
    would load without complaint yet compute something else, so a conflicting option is refused. The file is
    fetched here, before the builder spends time on a network that could not be loaded.

    Args:
        model: The registered model name.
        tag: What :func:`find_weights` takes, or ``None`` for random initialisation.
        num_classes: The builder's ``num_classes``.
        in_channels: The builder's ``in_channels``.
        kwargs: The builder's other options.
        adapt: The builder builds a classifier that :func:`load_weights` may fit to other classes (a fresh
            head) and other input channels (an adapted first convolution); otherwise both must equal the
            weights'.

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
        if given != fixed and not adapt:
            raise UnknownWeightsError(
                f"weights '{weights.name}' have {what}={fixed}, not {given}: build with {what}={fixed} "
                "(then replace the head to train on other classes)"
            )
    for key, value in weights.model_kwargs.items():
        if key in kwargs and kwargs[key] != value:
            raise UnknownWeightsError(f"weights '{weights.name}' need {key}={value!r}, not {kwargs[key]!r}")
    _ensure_local(weights)
    return weights, {**weights.model_kwargs, **kwargs}


def load_weights(
    model: M, weights: Weights | None, *, convert: Callable[[StateDict], StateDict] | None = None
) -> M:
    """Load pretrained weights into a freshly built network, fitting them to its classes and channels.

    Sets ``model.pretrained_cfg`` to the :class:`Weights` record (``None`` without weights). Where the network
    was built for other classes, the weights' classifier is not loaded: the network keeps its fresh head, and
    the record says so (``categories`` and ``metrics`` cleared, ``adapted`` filled). Where it takes other input
    channels, the first convolution is adapted (:func:`zoo.models.adapt.adapt_input_conv`), with a warning.

    Args:
        model: The network the weights' model name builds, for their classes and channels or others.
        weights: What :func:`weights_for` returned.
        convert: Replaces ``weights.convert`` for this network (GoogLeNet's auxiliary heads).

    Returns:
        ``model``, with the weights loaded (strictly: every key must match).

    Raises:
        WeightsError: The file cannot be had, fails its hash check, holds something other than tensors,
            or does not fit the network.
    """
    if weights is None:
        setattr(model, "pretrained_cfg", None)  # noqa: B010 (nn.Module's __setattr__ types only modules)
        return model
    state = read_weights(weights if convert is None else replace(weights, convert=convert))
    try:
        fit = fit_state_dict(model, state, num_classes=weights.num_classes, in_channels=weights.in_channels)
        model.load_state_dict(fit.state)
    except FitError as error:
        raise WeightsError(f"weights '{weights.name}' do not fit the network: {error}") from None
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise WeightsError(f"weights '{weights.name}' do not fit the network: {first}") from None
    record = weights
    if fit.num_classes is not None:
        record = record.with_new_head(fit.num_classes)
    if fit.in_channels is not None and fit.conv is not None:
        record = record.with_input_channels(fit.in_channels, fit.conv)
        warnings.warn(f"weights '{weights.name}': {record.adapted[-1]}", stacklevel=2)
    setattr(model, "pretrained_cfg", record)  # noqa: B010
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
