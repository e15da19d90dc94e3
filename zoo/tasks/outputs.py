"""What a task's steps return: the outputs Lightning hands to the callbacks.

``validation_step`` and ``test_step`` return one of the dicts below, chosen by the task's ``kind``; Lightning
passes it as ``outputs`` to every callback's ``on_validation_batch_end`` / ``on_test_batch_end`` and drops it
after them, so a callback reads what the task computed without running the network again or hooking into it.
``training_step`` returns the loss alone (Lightning's optimisation needs nothing else).

Every tensor is detached (:func:`detached`) and stays on the step's device: a callback copies what it keeps. The
classes in ``logits`` and ``target`` are counted alike, so ``logits.argmax(1) == target`` is a right prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, TypeVar

from torch import Tensor

__all__ = [
    "AutoencoderOutputs",
    "ClassificationOutputs",
    "DetectionOutputs",
    "LocalizationOutputs",
    "SegmentationOutputs",
    "StepOutputs",
    "StyleTransferOutputs",
    "detached",
]


class ClassificationOutputs(TypedDict):
    """One batch of a classification task."""

    loss: Tensor  #: ``()`` the batch's mean loss
    logits: Tensor  #: ``(B, K)`` class scores
    target: Tensor  #: ``(B,)`` ``int64`` true classes, 0 to ``K - 1``


class LocalizationOutputs(TypedDict):
    """One batch of a localization task (one object an image)."""

    loss: Tensor  #: ``()`` the batch's mean loss (class and box)
    logits: Tensor  #: ``(B, K)`` scores of the object classes, 0-based (the data's label ``i`` is class ``i - 1``)
    target: Tensor  #: ``(B,)`` ``int64`` true classes, 0-based as the logits count them
    boxes: Tensor  #: ``(B, 4)`` predicted ``XYXY`` boxes in pixels
    target_boxes: Tensor  #: ``(B, 4)`` true ``XYXY`` boxes in pixels


class DetectionOutputs(TypedDict):
    """One batch of a detection task: per image, what the detector found and the truth."""

    preds: list[
        dict[str, Tensor]
    ]  #: ``boxes`` ``(N, 4)`` ``XYXY`` pixels, 1-based ``labels`` ``(N,)``, ``scores``
    target: list[dict[str, Tensor]]  #: ``boxes`` ``(M, 4)`` ``XYXY`` pixels, 1-based ``labels`` ``(M,)``


class SegmentationOutputs(TypedDict):
    """One batch of a segmentation task."""

    loss: Tensor  #: ``()`` the batch's mean loss over the pixels not ignored
    preds: Tensor  #: ``(B, H, W)`` ``int64`` predicted class of every pixel, 0 the background
    target: Tensor  #: ``(B, H, W)`` ``int64`` true classes, 255 where ignored


class StyleTransferOutputs(TypedDict):
    """One batch of a style transfer task."""

    loss: Tensor  #: ``()`` the weighted perceptual loss
    preds: Tensor  #: ``(B, 3, H, W)`` the stylised images, unclamped (0..1 is the picture's range)


class AutoencoderOutputs(TypedDict):
    """One batch of an autoencoder task."""

    loss: Tensor  #: ``()`` the reconstruction loss
    preds: Tensor  #: ``(B, C, H, W)`` reconstructions, pixels in 0..1
    target: Tensor  #: ``(B, C, H, W)`` the images as pixels in 0..1


StepOutputs = (
    ClassificationOutputs
    | LocalizationOutputs
    | DetectionOutputs
    | SegmentationOutputs
    | StyleTransferOutputs
    | AutoencoderOutputs
)

OutputsT = TypeVar("OutputsT", bound=Mapping[str, Any])


def detached(outputs: OutputsT) -> OutputsT:
    """``outputs`` with every tensor, also inside lists and dicts, detached from the autograd graph (no copy)."""
    return _detach(outputs)


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, Mapping):
        return {key: _detach(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_detach(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_detach(item) for item in value)
    return value
