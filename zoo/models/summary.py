"""A Keras-style table of a network, layer by layer (``zoo summary`` prints it).

Each row is a layer that holds parameters or changes the shape of the data, in the order the forward
pass runs it, with its output shape (``HxWxC`` for feature maps, as Keras prints them), its parameter
count and its receptive field: the side of the input window one output unit sees, from the kernel
sizes, strides and dilations on the way (A. Araujo, W. Norris and J. Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019). Totals follow the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Layer", "default_input_size", "format_table", "input_channels", "summarize"]

# Layers whose output is the same shape as their input and that hold no parameters: left out of the table.
_QUIET = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Dropout, nn.Identity, nn.Softmax, nn.LeakyReLU)


@dataclass
class Layer:
    """One row of the summary.

    Attributes:
        name: The module's qualified name in the network (``features.0``).
        kind: The module's class name (``Conv2d``).
        output_shape: The output's shape without the batch dimension.
        params: Parameters held by the module itself (not by its children).
        receptive_field: Side of the input window one output unit sees; ``None`` when every unit sees
            the whole input (after flattening or global pooling).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    receptive_field: int | None


@dataclass
class _Field:
    """Receptive field ``size`` and ``jump`` (input pixels between neighbouring units) of a tensor."""

    size: int | None
    jump: int


def _geometry(module: nn.Module) -> tuple[int, int, int] | None:
    """``(kernel, stride, dilation)`` along the height of a windowed layer, or ``None`` for others."""

    def first(v: Any) -> int:
        return int(v[0] if isinstance(v, tuple | list) else v)

    if isinstance(module, nn.Conv2d | nn.MaxPool2d):
        return first(module.kernel_size), first(module.stride), first(module.dilation)
    if isinstance(module, nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return first(module.kernel_size), first(stride), 1
    return None


def summarize(model: nn.Module, input_size: Sequence[int]) -> list[Layer]:
    """Run one image through ``model`` and describe every layer it passes.

    Args:
        model: Any network taking ``(B, C, H, W)`` images.
        input_size: ``(C, H, W)`` of the image.

    Returns:
        The rows of the table, in execution order.
    """
    fields: dict[int, tuple[Tensor, _Field]] = {}  # id(tensor) -> (tensor kept alive, its field)
    by_shape: dict[tuple[int, ...], _Field] = {}  # widest field seen so far for each feature-map size
    rows: list[Layer] = []
    names = {m: n for n, m in model.named_modules()}

    def field_of(x: Tensor) -> _Field:
        known = fields.get(id(x))
        if known is not None and known[0] is x:
            return known[1]
        # Made by a functional op (an addition, a concatenation, torch.flatten): it sees at least as much as
        # the widest map of its size computed so far, which is exact for residual sums and Inception concats.
        if x.dim() == 4:
            return by_shape.get(tuple(x.shape[2:]), _Field(1, 1))
        return _Field(None, 1)

    def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, Tensor):
            return
        leaf = not any(True for _ in module.children())
        # A container's output was made by its last layer (already recorded) or by a functional op.
        after = _leaf_field(module, inputs, output) if leaf else field_of(output)
        fields[id(output)] = (output, after)
        if output.dim() == 4 and after.size is not None:
            spatial = tuple(output.shape[2:])
            widest = by_shape.get(spatial)
            if widest is None or (widest.size or 0) < after.size:
                by_shape[spatial] = after
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own or (leaf and not isinstance(module, _QUIET)):
            shape = tuple(output.shape[1:])
            rows.append(Layer(names[module], type(module).__name__, shape, own, after.size))

    def _leaf_field(module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> _Field:
        x = next((i for i in inputs if isinstance(i, Tensor)), None)
        before = field_of(x) if x is not None else _Field(1, 1)
        geometry = _geometry(module)
        if output.dim() != 4 or before.size is None:
            return _Field(None, before.jump)  # flattened: every unit sees everything
        if geometry is not None:
            kernel, stride, dilation = geometry
            return _Field(before.size + (kernel - 1) * dilation * before.jump, before.jump * stride)
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and output.shape[2:] == (1, 1):
            return _Field(None, before.jump)
        return before

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def _shape(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:  # (C, H, W) printed as Keras does: HxWxC
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return "x".join(str(s) for s in shape)


def format_table(model: nn.Module, rows: list[Layer], input_size: Sequence[int]) -> str:
    """The summary as text: one line per layer, then parameter totals.

    Args:
        model: The network (its parameters give the totals).
        rows: What :func:`summarize` returned.
        input_size: ``(C, H, W)`` of the image it was run on.
    """
    c, h, w = input_size
    table = [
        ("layer", "type", "output shape", "params", "receptive field"),
        ("(input)", "", f"{h}x{w}x{c}", "0", "1"),
    ]
    for r in rows:
        rf = "all" if r.receptive_field is None else f"{r.receptive_field}x{r.receptive_field}"
        table.append((r.name, r.kind, _shape(r.output_shape), f"{r.params:,}", rf))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    rule = "─" * (sum(widths) + 2 * 4)
    lines = [rule]
    for i, row in enumerate(table):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]
        cells += [row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append(rule)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += [
        rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    return "\n".join(lines)


def input_channels(model: nn.Module) -> int:
    """Channels the network's first convolution expects (1 for a network without one)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 1


def default_input_size(in_channels: int, model_kwargs: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images a network takes unless told: the ``image_size`` option, else 28x28 for one
    channel, 32x32 for a CIFAR head or stem, else 224x224 (what ``zoo summary`` and ``zoo export`` assume)."""
    small = "cifar" in (model_kwargs.get("head"), model_kwargs.get("stem"))  # the 32-pixel forms
    side = int(model_kwargs.get("image_size") or (28 if in_channels == 1 else 32 if small else 224))
    return in_channels, side, side
