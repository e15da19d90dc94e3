"""Fitting pretrained weights to a network built for other classes or other input channels.

Two differences are bridged, as timm's ``load_pretrained`` does, and nothing else:

* **Other classes**: the weights' classifier layers (an ``nn.Linear`` with one output per class: the head,
  GoogLeNet's auxiliary heads) are left out and the network keeps its own freshly initialised ones, which is
  what loading the weights and then calling ``reset_classifier`` gives.
* **Other input channels**: the first convolution's kernel is adapted by :func:`adapt_input_conv`, timm's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["Fit", "FitError", "adapt_input_conv", "fit_state_dict"]

StateDict = dict[str, Tensor]


class FitError(ValueError):
    """A state dict differs from a network in more than its classes and its input channels."""


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """A convolution kernel ``(O, I, kh, kw)`` adapted to ``in_channels`` inputs, by timm's rule.

    One input channel sums the kernel over its inputs: a grey image then gives what the original gave for the
    same grey value in every channel. More channels repeat the input channels in turn up to ``in_channels``
    (RGB → RGBR… for 4) and scale by ``I / in_channels``, keeping the response to an image whose channels are
    all equal: 1 → 3 repeats the kernel and divides it by 3. timm's ``adapt_input_conv`` does the same from 3
    channels; this is that idea for any ``I``.

    Args:
        weight: The first convolution's kernel.
        in_channels: Input channels of the network it is for.
    """
    dtype = weight.dtype
    kernel = weight.float()  # half-precision sums are inexact on CPU
    have = kernel.shape[1]
    if in_channels == 1:
        kernel = kernel.sum(dim=1, keepdim=True)
    else:
        repeats = -(-in_channels // have)  # ceil
        kernel = kernel.repeat(1, repeats, 1, 1)[:, :in_channels] * (have / in_channels)
    return kernel.to(dtype)


@dataclass(frozen=True)
class Fit:
    """A state dict fitted to a network, and what was changed to fit it.

    Attributes:
        state: The state dict to load (strictly).
        num_classes: The network's classes where its classifier was kept fresh, else ``None``.
        in_channels: The network's input channels where the first convolution was adapted, else ``None``.
        conv: The name of that convolution (``"features.0"``), else ``None``.
    """

    state: StateDict
    num_classes: int | None = None
    in_channels: int | None = None
    conv: str | None = None


def fit_state_dict(model: nn.Module, state: StateDict, *, num_classes: int, in_channels: int) -> Fit:
    """Fit the state dict of weights for ``num_classes`` and ``in_channels`` to a network built for others.

    Args:
        model: The freshly built network; its classifier layers are kept where the classes differ.
        state: The weights' state dict, with the network's keys.
        num_classes: Classes the weights were trained for.
        in_channels: Input channels the weights were trained for.

    Raises:
        FitError: A tensor differs in another way (one line, naming the first such tensor).
    """
    own = model.state_dict()
    modules = dict(model.named_modules())
    first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    fitted, classes, channels = dict(state), None, None
    for key, theirs in state.items():
        ours = own.get(key)
        if ours is None or ours.shape == theirs.shape:
            continue  # keys the network lacks are reported by load_state_dict
        owner, _, param = key.rpartition(".")
        module = modules.get(owner)
        if (
            isinstance(module, nn.Linear)
            and theirs.ndim == ours.ndim
            and theirs.shape[0] == num_classes
            and theirs.shape[1:] == ours.shape[1:]
        ):
            fitted[key], classes = ours.detach().clone(), ours.shape[0]
        elif (
            owner == first_conv
            and param == "weight"
            and isinstance(module, nn.Conv2d)
            and module.groups == 1
            and theirs.ndim == ours.ndim == 4
            and theirs.shape[1] == in_channels
            and (theirs.shape[0], *theirs.shape[2:]) == (ours.shape[0], *ours.shape[2:])
        ):
            with torch.no_grad():
                fitted[key], channels = adapt_input_conv(theirs, ours.shape[1]), ours.shape[1]
        else:
            raise FitError(
                f"{key} is {list(theirs.shape)} in the weights but {list(ours.shape)} in the network "
                "(only a classifier's outputs and the first convolution's input channels can differ)"
            )
    return Fit(fitted, classes, channels, first_conv if channels is not None else None)
