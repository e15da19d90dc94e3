"""Predictions written to a file once ``trainer.predict`` has them all, through Lightning's prediction writer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from zoo.errors import ZooError
from zoo.tasks.base import BaseTask, WritesPredictions, datamodule_of

__all__ = ["PredictionWriter", "write_prediction_csv"]


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
    An existing file is never overwritten.

    Use with ``trainer.predict(model, datamodule=dm, return_predictions=False)``: Lightning keeps the batches'
    predictions for an epoch writer all the same.

    Args:
        output: the file (or, for tasks that write a folder, the folder) to write.

    Attributes:
        summary: after ``trainer.predict``, the one line to print (``"200 predictions written to preds.csv"``);
            empty before.

    Raises:
        ZooError: more than one process predicts (each would hold only its share of the data), or ``output``
            exists.
    """

    def __init__(self, output: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.output = Path(output)
        self.summary = ""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before any prediction, to run on several processes or to overwrite ``output``."""
        super().setup(trainer, pl_module, stage)
        if stage != "predict":
            return
        _check_one_process(trainer)
        if self.output.exists():
            raise ZooError(f"{self.output} exists; choose another file with --output")

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
        names: Sequence[str] = data.classes if data is not None else ()
        if isinstance(pl_module, BaseTask) and pl_module.data_counts_background:
            names = ["background", *names]  # predicted labels count the background as 0 (localization)
        try:
            count = write_prediction_csv(batches, self.output, names)
        except FileExistsError:  # written in the meantime
            raise ZooError(f"{self.output} exists; choose another file with --output") from None
        self.summary = f"{count} predictions written to {self.output}"


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
