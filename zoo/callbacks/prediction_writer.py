"""Predictions written to a file once ``trainer.predict`` has them all, through Lightning's prediction writer.

Under several processes (DDP, torchrun, SLURM) every process predicts its share of the data; the shares are
gathered to rank zero, which writes every row once, in the data's order.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from zoo.callbacks.file_predictions import write_file_detections, write_file_masks, write_file_predictions
from zoo.data.photos import PhotosDataModule
from zoo.data.readers.images import read_image
from zoo.errors import DataError, ZooError
from zoo.figures.overlays import label_names
from zoo.tasks.base import BaseTask, WritesPredictions, datamodule_of

__all__ = ["PredictionWriter", "gather_predictions", "write_prediction_csv"]


def write_prediction_csv(batches: Sequence[dict[str, Any]], output: Path, names: Sequence[str]) -> int:
    """Write one CSV row per image, ``index,label,predicted,confidence,predicted_name``, to a new file.

    Args:
        batches: what a classifier's ``predict_step`` returned, batch by batch: ``label``, ``predicted`` and
            ``confidence``, each ``(B,)``.
        output: the file; it must not exist (it is opened with mode ``"x"``).
        names: the name of each predicted class, by its number (``predicted_name`` is empty past the end).

    Returns:
        The number of rows written.

    Raises:
        FileExistsError: ``output`` exists.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    index = 0
    with open(output, "x", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "label", "predicted", "confidence", "predicted_name"])
        for batch in batches:
            for label, predicted, confidence in zip(
                batch["label"].tolist(),
                batch["predicted"].tolist(),
                batch["confidence"].tolist(),
                strict=True,
            ):
                name = names[predicted] if 0 <= predicted < len(names) else ""
                writer.writerow([index, label, predicted, f"{confidence:.6f}", name])
                index += 1
    return index


class PredictionWriter(BasePredictionWriter):
    """Write what ``trainer.predict`` computed to ``output`` once the epoch is over (``write_interval="epoch"``).

    A task that writes its own kind of predictions (:class:`~zoo.tasks.base.WritesPredictions`: detection JSON,
    segmentation and style transfer PNG folders, autoencoder embeddings) is handed every batch's predictions and
    ``output``; any other task's predictions (classification, localization: ``label``, ``predicted`` and
    ``confidence`` per image) become a CSV (:func:`write_prediction_csv`), named by the DataModule's ``classes``.
    An existing file is never overwritten. Under several processes, rank zero writes what all of them predicted
    (:func:`gather_predictions`).

    Use with ``trainer.predict(model, datamodule=dm, return_predictions=False)``: Lightning keeps the batches'
    predictions for an epoch writer all the same.

    Image files (:class:`~zoo.data.photos.PhotosDataModule`) are written by
    :mod:`zoo.callbacks.file_predictions`, in the files' own pixels: a classifier's one row per file with the
    ``top_k`` most probable classes, a detector's one row per box scored ``threshold`` or more, a segmenter's one
    mask PNG per file in the folder ``output``; with ``overlay``, a PNG of each file with its predictions drawn on
    it. Files that did not decode are listed in :attr:`skipped` and counted in :attr:`summary`.

    Args:
        output: the file (or, for tasks that write a folder, the folder) to write.
        top_k: for image files and a classifier, the classes given per image (None: 5, or fewer when there are
            fewer classes).
        overlay: for image files, a folder for the labelled images (None: none); it must be new or empty.
        threshold: for image files and a detector, the least score of a box written (None: 0.5).

    Attributes:
        summary: after ``trainer.predict``, the one line to print (``"200 predictions written to preds.csv"``);
            empty before, and on ranks other than zero.
        skipped: after ``trainer.predict`` on image files, each file that did not decode, with the reason.

    Raises:
        ZooError: ``output`` exists, ``overlay`` holds files, ``top_k`` or ``threshold`` is out of range.
    """

    def __init__(
        self,
        output: str | Path,
        *,
        top_k: int | None = None,
        overlay: str | Path | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(write_interval="epoch")
        if top_k is not None and top_k < 1:
            raise ZooError(f"top_k must be at least 1, not {top_k}")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ZooError(f"the score threshold must be from 0 to 1, not {threshold}")
        self.output = Path(output)
        self.top_k, self.overlay = top_k, None if overlay is None else Path(overlay)
        self.threshold = 0.5 if threshold is None else threshold
        self.summary = ""
        self.skipped: list[tuple[Path, str]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before any prediction, to overwrite ``output`` or to write into a folder that holds files."""
        super().setup(trainer, pl_module, stage)
        if stage != "predict":
            return
        if self.output.exists():
            raise ZooError(f"{self.output} exists; choose another file with --output")
        if self.overlay is not None and self.overlay.is_dir() and any(self.overlay.iterdir()):
            raise ZooError(f"{self.overlay} holds files; choose a new or empty folder with --overlay")

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Write every batch's predictions to ``output`` (rank zero) and set :attr:`summary`."""
        batches = _flattened(predictions)
        if trainer.world_size > 1:
            batches = gather_predictions(batches, trainer.global_rank, trainer.world_size)
            if not trainer.is_global_zero:
                return
        data = datamodule_of(trainer)
        if isinstance(data, PhotosDataModule):
            self._write_files(batches, data)
            return
        if isinstance(pl_module, WritesPredictions):
            self.summary = pl_module.write_predictions(batches, self.output)
            return
        names: Sequence[str] = data.classes if data is not None else ()
        if isinstance(pl_module, BaseTask) and pl_module.data_counts_background:
            names = ["background", *names]  # predicted labels count the background as 0 (localization)
        try:
            count = write_prediction_csv(batches, self.output, names)
        except FileExistsError:  # written in the meantime
            raise ZooError(f"{self.output} exists; choose another file with --output") from None
        self.summary = f"{count} predictions written to {self.output}"

    def _write_files(self, batches: list[Any], data: PhotosDataModule) -> None:
        files, overlay = data.files, self.overlay
        try:
            if data.kind == "detection":
                images, boxes = write_file_detections(
                    batches, self.output, files, label_names(data.classes, data.num_classes), data.image_shape,
                    self.threshold, overlay,
                )  # fmt: skip
                self.summary = (
                    f"{boxes} boxes (score >= {self.threshold:g}) in {images} images written to {self.output}"
                )
            elif data.kind == "segmentation":
                images = write_file_masks(
                    batches, self.output, files, label_names(data.classes, data.num_classes), overlay
                )
                self.summary = f"{images} masks written to {self.output} (palette PNGs: pixel value = class)"
            else:
                images = write_file_predictions(
                    batches, self.output, files, data.classes, self.top_k or 5, overlay
                )
                self.summary = f"{images} predictions written to {self.output}"
        except FileExistsError:  # written in the meantime
            raise ZooError(f"{self.output} exists; choose another with --output") from None
        if overlay is not None:
            self.summary += f", {images} labelled images to {overlay}"
        predicted = {int(number) for batch in batches for number in batch["label"].tolist()}
        for number, file in enumerate(files):
            if number not in predicted:
                try:
                    read_image(file)
                    reason = "not predicted"
                except DataError as error:
                    reason = str(error).replace(f"{file} ", "", 1)  # the file is named beside the reason
                self.skipped.append((file, reason))
        if self.skipped:
            self.summary += (
                f"; {len(self.skipped)} file{'s' * (len(self.skipped) > 1)} skipped (not decodable)"
            )


def gather_predictions(batches: Sequence[dict[str, Any]], rank: int, world_size: int) -> list[dict[str, Any]]:
    """Every process's predictions, one sample a batch, in the order of the data (on every rank).

    Under several processes Lightning's prediction sampler (and zoo's in-memory loaders) deal the samples out
    without repeating any: rank ``r`` of ``w`` predicts samples ``r, r + w, r + 2w, ...`` in order, so its ``p``-th
    sample is the data's ``r + w * p``-th. Each batch (a dict of tensors and lists, ``B`` entries each) is cut into
    samples on the CPU, gathered from every rank, and put back in that order.

    Args:
        batches: this rank's predictions, batch by batch.
        rank: this process's global rank.
        world_size: the number of processes.
    """
    samples = [
        {
            key: value[index : index + 1].cpu() if isinstance(value, Tensor) else [value[index]]
            for key, value in batch.items()
        }
        for batch in batches
        for index in range(_batch_size(batch))
    ]
    everyone: list[Any] = [None] * world_size
    dist.all_gather_object(everyone, samples)
    placed = {
        source + world_size * position: sample
        for source, shared in enumerate(everyone)
        for position, sample in enumerate(shared)
    }
    return [placed[index] for index in sorted(placed)]


def _batch_size(batch: dict[str, Any]) -> int:
    """The number of samples in a batch of predictions: the length of its first entry."""
    first: Any = next(iter(batch.values()), [])
    return int(first.shape[0]) if isinstance(first, Tensor) else len(first)


def _flattened(predictions: Sequence[Any]) -> list[Any]:
    """The batches' predictions in order: Lightning nests them per dataloader when there are several."""
    if predictions and all(isinstance(batch, list) for batch in predictions):
        return [batch for loader in predictions for batch in loader]
    return list(predictions)
