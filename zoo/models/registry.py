"""One flat registry of model builders: ``register_model``, ``create_model``, ``list_models``.

Builders are keyword-only functions named after the model they build (``vgg16``), registered with
``@register_model`` in their family's module. Names are unique; registering a name twice raises.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from zoo.errors import ZooError
from zoo.models.weights import find_weights, get_weights
from zoo.models.weights_sources import is_reference

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


class UnknownModelError(ZooError, ValueError):
    """``create_model`` was given a name that no builder is registered under."""


def register_model(fn: Builder) -> Builder:
    """Register a model builder under its function name.

    Args:
        fn: A keyword-only builder such as ``def vgg16(*, num_classes=1000, ...) -> VGG``.

    Returns:
        ``fn`` itself, unchanged.

    Raises:
        ValueError: A builder with the same name is already registered.
    """
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model '{name}' is already registered (by {_MODELS[name].__module__})")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models that match a shell-style pattern, sorted.

    Args:
        pattern: An ``fnmatch`` pattern, e.g. ``"vgg*"`` or ``"*_bn"``.
    """
    return sorted(fnmatch.filter(_MODELS, pattern))


def create_model(
    name: str | None = None,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model by name, or the model a weights file names.

    ``num_classes``, ``in_channels`` and ``weights`` are passed to the builder only when given (not
    ``None``), so each builder keeps its own defaults: ``create_model("lenet5")`` has 10 classes and
    1 input channel, ``create_model("vgg16")`` has 1000 classes and 3 input channels. Given weights
    bring theirs: ``create_model("lenet5", weights="runs/.../best.ckpt")`` has the checkpoint's classes. A
    classifier asked for other classes loads the weights with a fresh head, and one asked for other channels
    adapts its first convolution (see :func:`zoo.models.weights.load_weights`).

    The network's ``pretrained_cfg`` is the :class:`~zoo.models.Weights` record it was loaded from (its
    ``categories``, ``metrics`` and ``transforms()``), or ``None`` without weights.

    Args:
        name: A name from :func:`list_models`; ``None`` takes it from ``weights`` (a file written by
            ``zoo export``, a checkpoint, or ``MODEL.TAG``).
        num_classes: Number of output logits; ``None`` keeps the weights' or the builder's default.
        in_channels: Channels of the input images; ``None`` keeps the weights' or the builder's default.
        weights: Pretrained weights: a tag from :func:`zoo.models.list_weights`, the path of a ``.safetensors``
            file written by ``zoo export`` (``PATH#sha256=<hex>`` or a ``PATH.sha256`` file beside it checks its
            hash), a zoo checkpoint path or a ``wandb:`` artifact reference; ``None`` for random initialisation.
        **kwargs: Family-specific options passed on to the builder (e.g. ``head="cifar"`` for VGG).

    Returns:
        The network, an ``nn.Module`` whose ``forward`` returns logits.

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests close matches), or neither a name
            nor weights naming a model were given.
    """
    if name is None:
        if weights is None:
            raise UnknownModelError("create_model needs a model name, or weights that name one")
        if not is_reference(weights) and "." not in weights:
            raise UnknownModelError(
                f"create_model needs a model name for weights '{weights}': create_model(NAME, weights='{weights}')"
            )
        found = get_weights(weights)
        name, weights = found.model, found.tag
    try:
        builder = _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise UnknownModelError(f"unknown model '{name}'{hint}; see zoo.models.list_models()") from None
    if weights is not None:  # given weights bring their classes and channels unless others are asked for
        found = find_weights(name, weights)
        num_classes = found.num_classes if num_classes is None else num_classes
        in_channels = found.in_channels if in_channels is None else in_channels
    given = {"num_classes": num_classes, "in_channels": in_channels, "weights": weights}
    net = builder(**{k: v for k, v in given.items() if v is not None}, **kwargs)
    if weights is None:  # builders load their weights, which sets it; without weights it is None
        setattr(net, "pretrained_cfg", None)  # noqa: B010 (nn.Module's __setattr__ types only modules)
    return net
