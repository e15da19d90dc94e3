"""One flat registry of model builders: ``register_model``, ``create_model``, ``list_models``.

Builders are keyword-only functions named after the model they build (``vgg16``), registered with
``@register_model`` in their family's module. Names are unique; registering a name twice raises. An option a
builder does not take is refused with the closest of those it takes (:func:`unknown_option`).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.weights import find_weights, get_weights
from zoo.models.weights_sources import is_reference

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model", "unknown_option"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}
#: what every builder takes, and a task gives from its own options rather than a network's
_COMMON_OPTIONS = frozenset({"num_classes", "in_channels", "weights"})
#: Python's refusal of a keyword argument, naming it
_UNEXPECTED = re.compile(r"got an unexpected keyword argument '(\w+)'")


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
        TypeError: the builder takes no option of a name in ``kwargs`` (the message suggests a close match and
            lists those it takes).
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
    try:
        net = builder(**{k: v for k, v in given.items() if v is not None}, **kwargs)
    except TypeError as error:
        refused = _UNEXPECTED.search(str(error))
        if refused is None or refused.group(1) not in kwargs:
            raise
        options = _options(builder)
        if refused.group(1) in options:  # refused further down, by something the builder calls
            raise
        raise TypeError(unknown_option(name, refused.group(1), options)) from error
    if weights is None:  # builders load their weights, which sets it; without weights it is None
        setattr(net, "pretrained_cfg", None)  # noqa: B010 (nn.Module's __setattr__ types only modules)
    return net


def unknown_option(model: str, option: str, options: Iterable[str]) -> str:
    """The message refusing an option that a model's builder does not take.

    Args:
        model: the registered name (``lenet5``).
        option: the option given.
        options: those the builder takes besides ``num_classes``, ``in_channels`` and ``weights``.

    Returns:
        One line: ``lenet5 has no option activaton; did you mean activation? it takes activation, image_size,
        pool``.
    """
    names = sorted(set(options) - _COMMON_OPTIONS)
    close = difflib.get_close_matches(option, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    takes = (
        f"it takes {', '.join(names)}"
        if names
        else "it takes none besides num_classes, in_channels and weights"
    )
    return f"{model} has no option {option}; {hint}{takes}"


def _options(builder: Callable[..., nn.Module]) -> list[str]:
    """The options ``builder`` takes: its own keywords, and where it passes the others on (``**kwargs``), those of
    the network it returns (its constructor's keywords with a default) that the builder does not set itself.

    A builder sets some of its network's options per variant (``vgg16`` builds ``VGG`` with ``batch_norm=False``);
    one given again fails. Each is told apart by building the network with it once on the meta device, which
    allocates nothing.
    """
    parameters = inspect.signature(builder).parameters.values()
    own = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        return own
    try:
        network = typing.get_type_hints(builder).get("return")
    except (NameError, TypeError):  # an annotation that does not resolve here
        return own
    if not isinstance(network, type):
        return own
    passed_on = [
        p
        for p in inspect.signature(network).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is not p.empty
        and p.name not in own
    ]
    return own + [p.name for p in passed_on if _passes_on(builder, p.name, p.default)]


def _passes_on(builder: Callable[..., nn.Module], option: str, value: object) -> bool:
    """Whether ``builder`` takes ``option`` (with its default ``value``), built on the meta device."""
    try:
        with torch.device("meta"):
            builder(**{option: value})
    # "got multiple values for keyword argument 'batch_norm'"; CPython reports a KeyError instead while it handles
    # another exception (as create_model does when it asks)
    except (TypeError, KeyError) as error:
        return re.search(rf"\b{option}\b", str(error)) is None
    except Exception:  # the option was taken; the meta device may refuse what comes after
        return True
    return True
