"""New images to predict: image files and folders of them, made into network inputs as the run that trained a
checkpoint made its own evaluation images.

A checkpoint keeps what its data declared (:func:`data_record`, under :data:`DATA_RECORD`: the class names, the
image shape and the normalisation), written by :meth:`zoo.tasks.BaseTask.on_save_checkpoint`.
:class:`PhotosDataModule` reads it back, so ``zoo predict --ckpt_path RUN/best.ckpt PATH...`` needs no training
data on disk: every image is read as RGB or grey (what the network takes), then resized, centre-cropped and
normalised by :func:`zoo.data.folder.evaluation_transform`. Any mix of formats, sizes, grey, RGBA and palette
images is taken; a file that does not decode is left out of its batch, and the prediction writer names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import default_collate

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.folder import ImageFilesDataModule, evaluation_transform
from zoo.data.readers.images import NumberedImageFiles, find_images
from zoo.errors import DataError

__all__ = ["DATA_RECORD", "PhotosDataModule", "collate_decoded", "data_record", "read_data_record"]

#: the key of a checkpoint holding :func:`data_record`
DATA_RECORD = "zoo_data"


def data_record(data: ZooDataModule) -> dict[str, Any] | None:
    """What a checkpoint keeps of its data: ``classes``, ``image_shape`` ``[C, H, W]``, ``mean`` and ``std`` (plain
    lists, which ``torch.load(weights_only=True)`` reads; None where the data declares none).

    Returns None for a DataModule that does not declare its classes.
    """
    try:
        classes = [str(name) for name in data.classes]
    except NotImplementedError:
        return None
    shape, mean, std = data.image_shape, data.mean, data.std
    return {
        "classes": classes,
        "image_shape": None if shape is None else [int(n) for n in shape],
        "mean": None if mean is None else [float(v) for v in mean.tolist()],
        "std": None if std is None else [float(v) for v in std.tolist()],
    }


def read_data_record(checkpoint: str | Path) -> dict[str, Any]:
    """The :func:`data_record` kept in ``checkpoint``, checked.

    Raises:
        DataError: the checkpoint cannot be read safely, or keeps no record of classes and image shape.
    """
    path = Path(checkpoint).expanduser()
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(DATA_RECORD)
    except Exception as error:  # missing, truncated, not a checkpoint, pickled code: all unreadable here
        raise DataError(f"checkpoint {path} cannot be read safely: {error}") from None
    shape = record.get("image_shape") if isinstance(record, dict) else None
    if not isinstance(shape, list) or len(shape) != 3 or not record.get("classes"):
        raise DataError(
            f"checkpoint {path} does not say which classes and image shape its network was trained on (it was "
            "written before zoo kept them, or from data that declares none): train it again with zoo fit, or "
            "predict its data's split without image paths"
        )
    return record


def collate_decoded(samples: Sequence[tuple[Tensor, int] | None], *, image_shape: Sequence[int]) -> Any:
    """Stack ``(image, number)`` samples into a batch, leaving out the files that did not decode (None).

    A batch with no image left is ``(empty (0, C, H, W) images, empty numbers)``.
    """
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return torch.zeros(0, *image_shape), torch.zeros(0, dtype=torch.long)
    return default_collate(kept)


def _expand(paths: Sequence[str]) -> list[Path]:
    """The files named, and the images under the folders named, in order, each once."""
    files: list[Path] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            files += find_images(path)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist; give image files or folders of them")
    return list(dict.fromkeys(files))


class PhotosDataModule(ImageFilesDataModule):
    """Unlabelled images for ``zoo predict``, made into inputs as the checkpoint's training data made its own.

    The predict batches are ``(images, numbers)``: float images ``(B, C, H, W)`` and each one's number in
    :attr:`files` (a classifier's ``predict_step`` returns them as ``label``); files that do not decode are left
    out. There are no other splits.

    Args:
        paths: image files and folders of them (searched recursively).
        checkpoint: the checkpoint whose :func:`data_record` says the classes, image shape and normalisation.
        batch_size: images per batch.
        num_workers: processes decoding images.

    Attributes:
        files: the image files, in the order of their numbers.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification"})

    def __init__(
        self, paths: list[str], checkpoint: str, *, batch_size: int = 32, num_workers: int = 0
    ) -> None:
        super().__init__()
        record = read_data_record(checkpoint)
        self.files = _expand(paths)
        self.batch_size = self.eval_batch_size = batch_size
        self.num_workers = num_workers
        self._classes = [str(name) for name in record["classes"]]
        self._shape = (
            int(record["image_shape"][0]),
            int(record["image_shape"][1]),
            int(record["image_shape"][2]),
        )
        if record.get("mean") is not None and record.get("std") is not None:
            self.mean = torch.tensor(record["mean"], dtype=torch.float32)
            self.std = torch.tensor(record["std"], dtype=torch.float32)
        self.collate_fn = partial(collate_decoded, image_shape=self._shape)

    @property
    def classes(self) -> list[str]:
        """The class names the checkpoint was trained on, in label order."""
        return self._classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` the checkpoint's network takes."""
        return self._shape

    @property
    def channels(self) -> int:
        """The channels the checkpoint's network takes."""
        return self._shape[0]

    def setup(self, stage: str | None = None) -> None:
        """The predict dataset: the files, read and transformed for the network."""
        if self.datasets:
            return
        mean = None if self.mean is None else self.mean.tolist()
        std = None if self.std is None else self.std.tolist()
        transform = evaluation_transform(self._shape, mean, std)
        self.datasets["predict"] = NumberedImageFiles(self.files, transform, channels=self.channels)
