"""Finding layers by name and catching what they compute, for the figure callbacks and ``zoo.visualize``.

Layers are named as in ``task.named_modules()``: a task keeps its network as ``net``, so LeNet-5's first
convolution is ``net.features.0``. The evaluation callbacks read a task's outputs from what its steps return
(:mod:`zoo.tasks.outputs`); :class:`OutputTap` is for what no step returns, such as the logits of training
batches (``benchmarks/degradation.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from zoo.errors import ZooError

__all__ = ["OutputTap", "capture", "conv_layers", "find_layer", "first_weight_layer", "labelled_logits"]


def conv_layers(module: nn.Module) -> list[str]:
    """Names of the 2-D convolutions in ``module``, in the order they were defined (for these networks, the
    order they run in)."""
    return [name for name, layer in module.named_modules() if isinstance(layer, nn.Conv2d)]


def find_layer(module: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``.

    Raises:
        ZooError: no such layer; the message suggests close names and lists the convolutions.
    """
    layers = dict(module.named_modules())
    if name in layers and name:
        return layers[name]
    close = difflib.get_close_matches(name, [n for n in layers if n], n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    convs = conv_layers(module)
    listed = ", ".join(convs[:12]) + (", ..." if len(convs) > 12 else "")
    raise ZooError(f"no layer named '{name}'; {hint}the convolutions are: {listed or 'none'}")


def first_weight_layer(module: nn.Module) -> tuple[str, nn.Conv2d | nn.Linear] | None:
    """The first convolution or linear layer (the one that looks at the pixels), with its name, or None."""
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            return name, layer
    return None


@contextmanager
def capture(layers: dict[str, nn.Module]) -> Iterator[dict[str, Tensor]]:
    """Record the output of each named layer during the forward passes run inside the ``with`` block.

    Yields a dict that fills up as the layers run: ``{name: output}`` (the last output of each).
    """
    outputs: dict[str, Tensor] = {}

    def keep(name: str) -> Any:
        def hook(layer: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, Tensor):
                outputs[name] = output

        return hook

    handles = [layer.register_forward_hook(keep(name)) for name, layer in layers.items()]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


class OutputTap:
    """Keeps the last output of a module's forward while attached, so a callback sees what a network computed in
    a step without running it again (a training step returns only its loss)."""

    def __init__(self) -> None:
        self.output: Tensor | None = None
        self._handle: Any = None

    def attach(self, module: nn.Module) -> None:
        """Start recording ``module``'s outputs."""
        self.detach()
        self._handle = module.register_forward_hook(self._hook)

    def detach(self) -> None:
        """Stop recording and forget the last output."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.output = None

    def take(self) -> Tensor | None:
        """The output recorded since the last call, or None."""
        output, self.output = self.output, None
        return output

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.output = output.detach() if isinstance(output, Tensor) else None


def labelled_logits(tap: OutputTap, batch: Any, num_classes: int) -> tuple[Tensor, Tensor] | None:
    """The logits ``(B, num_classes)`` a tap caught for ``batch`` and the batch's labels ``(B,)``.

    None when the batch is not ``(images, labels)`` with integer labels or the output is not one row of
    ``num_classes`` scores per label.
    """
    logits = tap.take()
    if logits is None or not isinstance(batch, list | tuple) or len(batch) < 2:
        return None
    labels = batch[1]
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.is_floating_point():
        return None
    if logits.ndim != 2 or logits.shape != (len(labels), num_classes):
        return None
    return logits, labels
