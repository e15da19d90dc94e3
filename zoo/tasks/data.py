"""What figures read of a task and its data: the names of the classes it predicts, and how the images were
normalised. Both come from the declared names of :class:`~zoo.data.base.ZooDataModule`; other data gives none."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from zoo.data.base import ZooDataModule
from zoo.tasks.base import BaseTask

__all__ = ["class_names", "input_stats"]


def class_names(task: Any, datamodule: Any) -> list[str] | None:
    """The names of the classes a task predicts, in the order of its scores.

    Args:
        task: the task (its ``num_classes`` counts the classes, when it is a :class:`~zoo.tasks.base.BaseTask`
            that has one), or any other module.
        datamodule: its data; a :class:`~zoo.data.base.ZooDataModule` names the classes and, for a task
            without ``num_classes``, counts them.

    Returns:
        The DataModule's ``classes`` when there are as many as the task has classes, else ``"0"``, ``"1"``, ...;
        None when neither says how many classes there are.
    """
    data = datamodule if isinstance(datamodule, ZooDataModule) else None
    count = task.num_classes if isinstance(task, BaseTask) else None
    if count is None and data is not None:
        count = data.num_classes
    if count is None or count < 1:
        return None
    names = data.classes if data is not None else None
    if names is not None and len(names) == count:
        return [str(name) for name in names]
    return [str(index) for index in range(count)]


def input_stats(datamodule: Any) -> tuple[Tensor | None, Tensor | None]:
    """The per-channel ``(mean, std)`` (0..1 units) a :class:`~zoo.data.base.ZooDataModule` normalises its images
    with, or ``(None, None)`` when it does not normalise them (or has not yet read them)."""
    if not isinstance(datamodule, ZooDataModule):
        return None, None
    mean, std = datamodule.mean, datamodule.std
    if mean is None or std is None or not mean.numel() or mean.shape != std.shape:
        return None, None
    return mean, std
