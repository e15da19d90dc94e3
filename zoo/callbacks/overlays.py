"""Predicted boxes and masks drawn over the images, next to the true ones, for localization, detection and
segmentation.

The callback draws what the task's declared ``kind`` calls for, from the outputs its ``validation_step`` and
``test_step`` return (:mod:`zoo.tasks.outputs`): it keeps those of the first images of the epoch, with the images
from the batches, and draws each image twice, the truth then the prediction (:mod:`zoo.figures.overlays`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from zoo.callbacks.figures import EvaluationFigure
from zoo.data.base import TaskKind
from zoo.errors import ZooError
from zoo.figures.overlays import (
    Overlay,
    as_pictures,
    detection_overlays,
    label_names,
    localization_overlays,
    overlay_figure,
    segmentation_overlays,
)
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw
from zoo.tasks.base import BaseTask, datamodule_of
from zoo.tasks.data import input_stats

__all__ = ["DRAWN_KINDS", "PredictionOverlays"]

#: the kinds of task whose predictions are drawn over their images, and the outputs each must return
DRAWN_KINDS: dict[TaskKind, str] = {
    "localization": "logits (B, K), boxes (B, 4), target (B,) and target_boxes (B, 4)",
    "detection": "preds and target, one dict of boxes and labels per image",
    "segmentation": "preds (B, H, W) and target (B, H, W), integer classes",
}


class PredictionOverlays(EvaluationFigure):
    """Draw the first ``num_images`` validation (or test) images with their true and predicted boxes and masks.

    Works with the tasks whose ``kind`` is localization, detection or segmentation (:data:`DRAWN_KINDS`); with
    any other module (a classifier) it draws nothing and warns once. The predictions are those the task's steps
    return (no extra pass of the network); the images come from the same batches. Each image is drawn as a pair,
    truth then prediction:

    - localization: the box with the class name; the predicted box with the class and its probability;
    - detection: the true boxes; the predicted boxes with ``score >= score_threshold``, with class and score;
      instance masks, when the prediction has ``masks`` (Mask R-CNN) and the truth too, on both;
    - segmentation: each pixel's class as a translucent colour with an opaque edge, background unpainted,
      ignored pixels (255) light grey, the classes named in the tile's corner; the prediction's caption gives
      the share of (not ignored) pixels it got right.

    A class has the same colour in every box, mask and figure. Names come from the DataModule's ``classes``
    (label ``i`` is ``classes[i - 1]``). Images are shown as they are when in 0..1 (the zoo's detection and
    segmentation data), un-normalised with the DataModule's ``mean``/``std`` when it has them, else stretched.

    Figures ``val/overlays`` and ``test/overlays`` (files ``<when>-val-overlays.png``; see
    :mod:`zoo.figures.saving`), drawn on rank zero from its own first images.

    Args:
        num_images: images drawn (each twice: truth and prediction).
        every_n_epochs: during a fit, draw every this many epochs (and at the last); validation and test runs
            on their own always draw.
        score_threshold: detections scored below this are not drawn.
        min_side: images whose longer side is shorter are enlarged by a whole factor to at least this many
            pixels (Shapes' 128 px become 256 px), so that lines and labels are readable.
        max_side: images whose longer side is longer are shrunk to this many pixels.
        alpha: opacity of the mask colours, 0 (invisible) to 1 (opaque).

    Raises:
        ZooError: an option out of its range.
    """

    def __init__(
        self,
        num_images: int = 8,
        every_n_epochs: int = EVERY_N_EPOCHS,
        score_threshold: float = 0.5,
        min_side: int = 192,
        max_side: int = 512,
        alpha: float = 0.5,
    ) -> None:
        if num_images < 1:
            raise ZooError(f"PredictionOverlays: num_images must be at least 1, got {num_images}")
        if every_n_epochs < 0:
            raise ZooError(f"PredictionOverlays: every_n_epochs must be 0 or more, got {every_n_epochs}")
        if not 0 <= score_threshold <= 1:
            raise ZooError(f"PredictionOverlays: score_threshold must be from 0 to 1, got {score_threshold}")
        if not 1 <= min_side <= max_side:
            raise ZooError(
                f"PredictionOverlays: need 1 <= min_side <= max_side, got min_side={min_side}, max_side={max_side}"
            )
        if not 0 <= alpha <= 1:
            raise ZooError(f"PredictionOverlays: alpha must be from 0 to 1, got {alpha}")
        self.num_images, self.every_n_epochs = num_images, every_n_epochs
        self.score_threshold = score_threshold
        self.min_side, self.max_side, self.alpha = min_side, max_side, alpha
        self._active = False
        self._warned = False
        self._kind: TaskKind | None = None
        self._num_classes: int | None = None
        self._kept: list[tuple[Any, dict[str, Any]]] = []  # (images, outputs) chunks, copied to the CPU
        self._count = 0

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            rank_zero_warn(f"PredictionOverlays: {message}; no overlays are drawn")

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._kept, self._count = [], 0
        self._active = trainer.is_global_zero and should_draw(trainer, self.every_n_epochs)
        if not self._active:
            return
        self._kind = pl_module.kind if isinstance(pl_module, BaseTask) else None
        self._num_classes = pl_module.num_classes if isinstance(pl_module, BaseTask) else None
        if self._kind not in DRAWN_KINDS:
            self._active = False
            kind = f"a {self._kind} task" if self._kind else f"{type(pl_module).__name__}, not a zoo task,"
            self._warn_once(f"{kind} has no boxes or masks to draw (only {', '.join(DRAWN_KINDS)} tasks do)")

    def _batch(self, outputs: Any, batch: Any) -> None:
        if not self._active or self._count >= self.num_images or self._kind is None:
            return
        room = self.num_images - self._count
        images = batch[0][:room] if isinstance(batch, list | tuple) and batch else None
        kept = _kept_outputs(self._kind, outputs, images)
        if images is None or kept is None:
            self._active = False
            self._warn_once(
                f"the steps of a {self._kind} task must return {DRAWN_KINDS[self._kind]} for the batch's "
                "images (zoo.tasks.outputs)"
            )
            return
        self._kept.append((_copy(images), kept))
        self._count += len(images)

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active or not self._kept or self._kind is None:
            return
        self._active = False
        kept, self._kept = self._kept, []
        data = datamodule_of(trainer)
        classes = data.classes if data is not None else None
        mean, std = input_stats(data)
        pictures: list[Tensor] = []
        pairs: list[tuple[Overlay, Overlay]] = []
        for images, out in kept:
            pictures += as_pictures(images, mean, std)
            if self._kind == "localization":
                names = label_names(classes, out["logits"].shape[1] + 1)
                pairs += localization_overlays(out["logits"], out["boxes"], out["target"] + 1,
                                               out["target_boxes"], names)  # fmt: skip
            elif self._kind == "detection":
                names = label_names(classes, data.num_classes if data is not None else None)
                pairs += detection_overlays(out["preds"], out["target"], names, self.score_threshold)
            else:
                names = label_names(classes, self._num_classes)
                pairs += segmentation_overlays(out["preds"], out["target"], names)
        figure = overlay_figure(
            pictures, pairs, min_side=self.min_side, max_side=self.max_side, alpha=self.alpha
        )
        save_figure(trainer, figure, f"{stage}/overlays")


def _copy(value: Any) -> Any:
    """A CPU copy of a tensor (a plain ``Tensor``, not a ``tv_tensors`` class), or of the tensors in a list or a
    dict (a loader may reuse its buffers, and the step's outputs live on the device)."""
    if isinstance(value, Tensor):
        return value.detach().as_subclass(Tensor).to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items() if isinstance(item, Tensor)}
    return [_copy(item) for item in value]  # a detection batch's list (or tuple) of images or dicts


def _kept_outputs(kind: TaskKind, outputs: Any, images: Any) -> dict[str, Any] | None:
    """CPU copies of what a ``kind`` task's step outputs hold for ``images`` (the batch's first ones); None when
    the outputs are not what that kind returns (:mod:`zoo.tasks.outputs`)."""
    if not isinstance(outputs, Mapping) or images is None:
        return None
    size = len(images)
    if kind == "detection":
        found, target = outputs.get("preds"), outputs.get("target")
        if (
            not (_dicts_with_boxes(found) and _dicts_with_boxes(target))
            or min(len(found), len(target)) < size
        ):
            return None
        return {"preds": _copy(list(found[:size])), "target": _copy(list(target[:size]))}
    keys = ("logits", "boxes", "target", "target_boxes") if kind == "localization" else ("preds", "target")
    parts = {key: outputs.get(key) for key in keys}
    tensors = {key: part for key, part in parts.items() if isinstance(part, Tensor) and len(part) >= size}
    if len(tensors) < len(keys):
        return None
    kept = {key: _copy(part[:size]) for key, part in tensors.items()}
    if kind == "localization":
        logits, boxes, target, target_boxes = (kept[key] for key in keys)
        shapes_ok = (
            logits.ndim == 2 and boxes.shape[1:] == target_boxes.shape[1:] == (4,) and target.ndim == 1
        )
    else:
        preds, target = kept["preds"], kept["target"]
        shapes_ok = preds.ndim == target.ndim == 3 and not preds.is_floating_point()
    return kept if shapes_ok else None


def _dicts_with_boxes(value: Any) -> TypeGuard[Sequence[Mapping[str, Tensor]]]:
    return isinstance(value, Sequence) and all(
        isinstance(item, Mapping)
        and isinstance(item.get("boxes"), Tensor)
        and isinstance(item.get("labels"), Tensor)
        for item in value
    )
