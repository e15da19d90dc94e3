"""Predictions written to a file once ``trainer.predict`` has them all, through Lightning's prediction writer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image, ImageDraw

from zoo.data.photos import PhotosDataModule
from zoo.data.readers.images import read_image
from zoo.errors import DataError, ZooError
from zoo.figures.drawing import class_colour, font, overlay_scale, resize_image
from zoo.figures.saving import write_png
from zoo.tasks.base import BaseTask, WritesPredictions, datamodule_of

__all__ = ["PredictionWriter", "draw_label", "write_file_predictions", "write_prediction_csv"]

#: the side an overlay's longer edge is brought to, up for small images and down for large ones
_OVERLAY_SIDES = (256, 1024)


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


def write_file_predictions(
    batches: Sequence[dict[str, Any]], output: Path, files: Sequence[Path], names: Sequence[str], top_k: int
) -> list[tuple[Path, int, float]]:
    """Write one CSV row per image file, ``file,class,probability,class_2,probability_2,...``, to a new file.

    Args:
        batches: what a classifier's ``predict_step`` returned for :class:`~zoo.data.photos.PhotosDataModule`'s
            batches: ``label`` (each image's number in ``files``) and ``probabilities`` ``(B, num_classes)``.
        output: the file; it must not exist.
        files: the image files by number.
        names: the class names by label.
        top_k: the classes given per image, most probable first (at most ``len(names)``).

    Returns:
        ``(file, class, probability)`` of every row written, in order.

    Raises:
        FileExistsError: ``output`` exists.
    """
    top_k = max(1, min(top_k, len(names)))
    header = ["file", "class", "probability"]
    for rank in range(2, top_k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    output.parent.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, int, float]] = []
    with open(output, "x", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for batch in batches:
            probabilities, classes = batch["probabilities"].float().topk(top_k, dim=1)
            for number, row_p, row_c in zip(
                batch["label"].tolist(), probabilities.tolist(), classes.tolist(), strict=True
            ):
                cells: list[object] = [str(files[number])]
                for p, c in zip(row_p, row_c, strict=True):
                    cells += [names[c], f"{p:.6f}"]
                writer.writerow(cells)
                written.append((files[number], row_c[0], row_p[0]))
    return written


def draw_label(source: Path, label: int, text: str) -> Image.Image:
    """An image file, its longer side brought to 256..1024 pixels, with ``text`` written in its top-left corner on
    a chip of ``label``'s colour (:func:`zoo.figures.drawing.class_colour`, as the figures colour classes)."""
    image = read_image(source)
    height, width = image.shape[-2:]
    image = resize_image(image, overlay_scale(height, width, *_OVERLAY_SIDES))
    picture = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    size = max(12, max(picture.size) // 24)  # readable at any size the image is shown at
    draw, face = ImageDraw.Draw(picture), font(size)
    margin = size // 4
    right = margin + face.getlength(text) + 2 * margin
    draw.rectangle((margin, margin, right, margin + size + 2 * margin), fill=class_colour(label))
    draw.text((2 * margin, 2 * margin), text, fill=(0, 0, 0), font=face)
    return picture


class PredictionWriter(BasePredictionWriter):
    """Write what ``trainer.predict`` computed to ``output`` once the epoch is over (``write_interval="epoch"``).

    A task that writes its own kind of predictions (:class:`~zoo.tasks.base.WritesPredictions`: detection JSON,
    segmentation and style transfer PNG folders, autoencoder embeddings) is handed every batch's predictions and
    ``output``; any other task's predictions (classification, localization: ``label``, ``predicted`` and
    ``confidence`` per image) become a CSV (:func:`write_prediction_csv`), named by the DataModule's ``classes``.
    An existing file is never overwritten.

    Use with ``trainer.predict(model, datamodule=dm, return_predictions=False)``: Lightning keeps the batches'
    predictions for an epoch writer all the same.

    Image files (:class:`~zoo.data.photos.PhotosDataModule`) get one row per file with the ``top_k`` most probable
    classes (:func:`write_file_predictions`) and, with ``overlay``, a PNG of each with its class and probability
    drawn on it; files that did not decode are listed in :attr:`skipped` and counted in :attr:`summary`.

    Args:
        output: the file (or, for tasks that write a folder, the folder) to write.
        top_k: for image files, the classes given per image (None: 5, or fewer when there are fewer classes).
        overlay: for image files, a folder for the labelled images (None: none); it must be new or empty.

    Attributes:
        summary: after ``trainer.predict``, the one line to print (``"200 predictions written to preds.csv"``);
            empty before.
        skipped: after ``trainer.predict`` on image files, each file that did not decode, with the reason.

    Raises:
        ZooError: more than one process predicts (each would hold only its share of the data), ``output``
            exists, or ``overlay`` holds files.
    """

    def __init__(
        self, output: str | Path, *, top_k: int | None = None, overlay: str | Path | None = None
    ) -> None:
        super().__init__(write_interval="epoch")
        if top_k is not None and top_k < 1:
            raise ZooError(f"top_k must be at least 1, not {top_k}")
        self.output = Path(output)
        self.top_k, self.overlay = top_k, None if overlay is None else Path(overlay)
        self.summary = ""
        self.skipped: list[tuple[Path, str]] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before any prediction, to run on several processes or to overwrite ``output``."""
        super().setup(trainer, pl_module, stage)
        if stage != "predict":
            return
        _check_one_process(trainer)
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
        """Write every batch's predictions to ``output`` and set :attr:`summary`."""
        _check_one_process(trainer)
        batches = _flattened(predictions)
        if isinstance(pl_module, WritesPredictions):
            self.summary = pl_module.write_predictions(batches, self.output)
            return
        data = datamodule_of(trainer)
        if isinstance(data, PhotosDataModule):
            self._write_files(batches, data)
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
        names, files = data.classes, data.files
        try:
            written = write_file_predictions(batches, self.output, files, names, self.top_k or 5)
        except FileExistsError:  # written in the meantime
            raise ZooError(f"{self.output} exists; choose another file with --output") from None
        done = {file for file, _, _ in written}
        for file in files:
            if file not in done:
                try:
                    read_image(file)
                    reason = "not predicted"
                except DataError as error:
                    reason = str(error).replace(f"{file} ", "", 1)  # the file is named beside the reason
                self.skipped.append((file, reason))
        self.summary = f"{len(written)} predictions written to {self.output}"
        if self.overlay is not None:
            for file, label, probability in written:
                drawn = draw_label(file, label, f"{names[label]} {probability:.2f}")
                write_png(drawn, self.overlay / f"{file.stem}.png")
            self.summary += f", {len(written)} labelled images to {self.overlay}"
        if self.skipped:
            self.summary += (
                f"; {len(self.skipped)} file{'s' * (len(self.skipped) > 1)} skipped (not decodable)"
            )


def _check_one_process(trainer: L.Trainer) -> None:
    if trainer.world_size != 1:
        raise ZooError(
            f"zoo predict runs on one process (each of the {trainer.world_size} would write only its share of the "
            "data); set --trainer.devices 1"
        )


def _flattened(predictions: Sequence[Any]) -> list[Any]:
    """The batches' predictions in order: Lightning nests them per dataloader when there are several."""
    if predictions and all(isinstance(batch, list) for batch in predictions):
        return [batch for loader in predictions for batch in loader]
    return list(predictions)
