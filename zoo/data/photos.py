"""New images to predict: image files and folders of them, made into network inputs as the run that trained a
checkpoint made its own evaluation images.

A checkpoint keeps what its data declared (:func:`data_record`, under :data:`DATA_RECORD`: the class names, the
image shape and the normalisation), written by :meth:`zoo.tasks.BaseTask.on_save_checkpoint`.
:class:`PhotosDataModule` reads it back, so ``zoo predict --ckpt_path RUN/best.ckpt PATH...`` needs no training
data on disk: every image is read as RGB or grey (what the network takes). For a classifier it is then resized,
centre-cropped and normalised by :func:`zoo.data.folder.evaluation_transform`; for a detector or a segmenter the
whole image is resized to the size the network was trained on (:func:`whole_image_transform`), and the prediction
writer maps boxes and masks back to the file's own pixels. Any mix of formats, sizes, grey, RGBA and palette images
is taken; a file that does not decode is left out of its batch, and the prediction writer names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import Tensor
from torch.utils.data import default_collate
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.folder import ImageFilesDataModule, evaluation_transform
from zoo.data.readers.images import NumberedImageFiles, find_images
from zoo.errors import DataError

__all__ = [
    "DATA_RECORD",
    "PHOTO_KINDS",
    "PhotoKind",
    "PhotosDataModule",
    "collate_decoded",
    "data_record",
    "read_data_record",
    "whole_image_transform",
]

#: the key of a checkpoint holding :func:`data_record`
DATA_RECORD = "zoo_data"
#: the tasks that predict image files: a class per image, boxes, or a class per pixel
PhotoKind = Literal["classification", "detection", "segmentation"]
PHOTO_KINDS: tuple[str, ...] = get_args(PhotoKind)


def data_record(data: ZooDataModule) -> dict[str, Any] | None:
    """What a checkpoint keeps of its data: ``classes``, ``num_classes`` (the classes with the background, for data
    that counts one), ``image_shape`` ``[C, H, W]``, ``mean`` and ``std`` (plain lists, which
    ``torch.load(weights_only=True)`` reads; None where the data declares none).

    Returns None for a DataModule that does not declare its classes.
    """
    try:
        classes = [str(name) for name in data.classes]
    except NotImplementedError:
        return None
    shape, mean, std = data.image_shape, data.mean, data.std
    return {
        "classes": classes,
        "num_classes": int(data.num_classes),
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


def whole_image_transform(
    image_shape: Sequence[int], mean: Sequence[float] | None, std: Sequence[float] | None
) -> v2.Compose:
    """How an image file becomes the input of a detector or a segmenter: all of it kept, nothing cropped.

    Args:
        image_shape: ``(C, H, W)`` of the images the network was trained on.
        mean: per-channel mean ``(C,)`` the inputs are normalised with (0..1 units); None for no normalisation.
        std: per-channel standard deviation ``(C,)``; None for no normalisation.

    Returns:
        A transform from a ``uint8`` ``(C, h, w)`` image of any size to a float ``(C, H, W)`` one: resized to
        ``H`` x ``W`` (so objects keep the scale they were trained at, relative to the image), scaled to 0..1 and
        normalised. A box or mask predicted on it maps back to the file by the ratio of the two sizes.
    """
    _, height, width = image_shape
    steps: list[torch.nn.Module] = [
        v2.Resize((height, width), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


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
    :attr:`files` (the tasks' ``predict_step`` return them as ``label``); files that do not decode are left
    out. There are no other splits.

    Args:
        paths: image files and folders of them (searched recursively).
        checkpoint: the checkpoint whose :func:`data_record` says the classes, image shape and normalisation.
        kind: the task of the checkpoint: a classifier's images are centre-cropped as its evaluation images were,
            a detector's or segmenter's are resized whole (:func:`whole_image_transform`).
        batch_size: images per batch.
        num_workers: processes decoding images.

    Attributes:
        files: the image files, in the order of their numbers.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification"})

    def __init__(
        self,
        paths: list[str],
        checkpoint: str,
        *,
        kind: PhotoKind = "classification",
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if kind not in PHOTO_KINDS:
            raise DataError(f"image files are predicted by {', '.join(PHOTO_KINDS)} tasks, not {kind!r}")
        self.kind: PhotoKind = kind
        # an instance serves its checkpoint's task only, as ShapesDataModule serves its mode
        self.kinds = frozenset({kind})  # type: ignore[misc]
        record = read_data_record(checkpoint)
        self.files = _expand(paths)
        self.batch_size = self.eval_batch_size = batch_size
        self.num_workers = num_workers
        self._classes = [str(name) for name in record["classes"]]
        # recorded since detection and segmentation runs predict image files; before, classes alone
        self._num_classes = int(record.get("num_classes") or len(self._classes))
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
    def num_classes(self) -> int:
        """The classes the checkpoint's network predicts: with the background for a detector or segmenter."""
        return self._num_classes

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
        made = evaluation_transform if self.kind == "classification" else whole_image_transform
        transform = made(self._shape, mean, std)
        self.datasets["predict"] = NumberedImageFiles(self.files, transform, channels=self.channels)
