"""torch.hub entry points: every network registered in :mod:`zoo.models`, under its registered name.

    torch.hub.load("path/to/zoo", "lenet5", weights="fashionmnist", source="local")
    torch.hub.load("path/to/zoo", "resnet20", source="local", num_classes=10)

Each entry point is ``zoo.models.create_model(name, **kwargs)``: ``weights=`` takes a tag of
``zoo.models.list_weights()``, a run's checkpoint or a ``wandb:`` artifact, and fixes ``num_classes`` and
``in_channels``. torch.hub puts this folder first on ``sys.path`` while it imports this file, so ``zoo`` is the
package beside it. The entry points are made from the registry: torch.hub lists this module's public callables,
so nothing else callable may be imported here under a public name.
"""

from __future__ import annotations

import typing

import torch

import zoo.models

dependencies = ["torch", "torchvision"]


def _entry_point(name: str) -> typing.Callable[..., torch.nn.Module]:
    def entry(**kwargs: typing.Any) -> torch.nn.Module:
        return zoo.models.create_model(name, **kwargs)

    weights = ", ".join(zoo.models.list_weights(name)) or "none"
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"``zoo.models.create_model({name!r}, **kwargs)``: options num_classes, in_channels, weights and the "
        f"builder's own. Pretrained weights: {weights}."
    )
    return entry


globals().update({name: _entry_point(name) for name in zoo.models.list_models()})
