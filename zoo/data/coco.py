"""Object detection on your own data in the COCO format: one annotation json and a folder of images.

The json is the one COCO publishes (``instances_train2017.json``) and most labelling tools export::

    {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}, ...],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 18, "bbox": [x, y, w, h],
                      "iscrowd": 0, "segmentation": [[x1, y1, x2, y2, ...]]}, ...],
     "categories": [{"id": 18, "name": "dog"}, ...]}

Samples follow :mod:`zoo.data.targets`: categories, sorted by id, become the contiguous labels 1, 2, ...
(0 is the background) with their names in :attr:`COCODetectionDataModule.classes`; ``bbox`` ``[x, y, w, h]``
becomes ``XYXY``; ``iscrowd`` annotations are dropped unless ``keep_crowd``; boxes are clipped to the image and
those under one pixel dropped (:func:`~zoo.data.targets.check_boxes`), counted and logged once per split.

With ``masks=True`` every object also gets an instance mask rasterised from its polygons with PIL. Run-length
encoded (RLE) segmentations need ``pycocotools``, used when installed; without it such an annotation is a
:class:`~zoo.errors.DataError` (crowd regions, which COCO stores as RLE, are dropped by default anyway).

This module also holds what the VOC DataModules share: the per-image record, the map-style dataset that decodes
and transforms one sample, the transforms v2 pipeline and the loaders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from zoo.data.targets import as_boxes, check_boxes, collate_detection
from zoo.errors import DataError

__all__ = ["COCODetectionDataModule", "DetectionRecord", "DetectionSamples", "detection_transform"]

log = logging.getLogger(__name__)

Sample = tuple[tv_tensors.Image, dict[str, Any]]


@dataclass
class DetectionRecord:
    """One annotated image, as read from the annotation files (nothing decoded yet).

    Attributes:
        image: the image file.
        height: the image's height according to the annotations.
        width: the image's width according to the annotations.
        boxes: ``(N, 4)`` ``XYXY`` boxes in pixels, already clipped and filtered.
        labels: ``(N,)`` 1-based labels.
        segments: per object, its COCO ``segmentation`` (polygons or RLE), when masks are wanted.
    """

    image: Path
    height: int
    width: int
    boxes: Tensor
    labels: Tensor
    segments: list[Any] | None = field(default=None)


def filter_boxes(boxes: Tensor, *, height: int, width: int, where: str) -> tuple[Tensor, Tensor]:
    """Clip ``XYXY`` boxes to the image and say which to keep (at least one pixel on each side).

    Returns:
        The clipped boxes ``(N, 4)`` and a boolean keep mask ``(N,)``.
    """
    keep = check_boxes(boxes, height=height, width=width, where=where)
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    return clipped, keep


def read_image(path: Path) -> Tensor:
    """Decode an image file as ``uint8`` ``(3, H, W)``; a missing or corrupt file is a one-line DataError."""
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{path}: cannot decode the image ({reason})") from error


def rasterise(segment: Any, *, height: int, width: int, where: str) -> np.ndarray:
    """One object's COCO ``segmentation`` as a ``uint8`` ``(H, W)`` mask of 0 and 1.

    Polygons (a list of ``[x1, y1, x2, y2, ...]``) are drawn with PIL; RLE (a dict) needs ``pycocotools``.
    """
    if isinstance(segment, dict):
        try:
            from pycocotools import mask as coco_mask
        except ImportError:
            raise DataError(
                f"{where}: RLE segmentation needs pycocotools (pip install pycocotools), or pass masks=false"
            ) from None
        rle = segment
        if isinstance(segment.get("counts"), list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(segment, height, width)
        return np.asarray(coco_mask.decode(rle), dtype=np.uint8)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in segment:
        if len(polygon) >= 6:  # three points at least
            draw.polygon([float(v) for v in polygon], outline=1, fill=1)
    return np.asarray(canvas, dtype=np.uint8)


class DetectionSamples(Dataset[Sample]):
    """Decodes and transforms one record into ``(image, target)`` as :mod:`zoo.data.targets` describes."""

    def __init__(self, records: Sequence[DetectionRecord], transform: v2.Transform | None = None) -> None:
        self.records, self.transform = list(records), transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        pixels = read_image(record.image)
        height, width = pixels.shape[-2:]
        if (height, width) != (record.height, record.width):
            raise DataError(
                f"{record.image}: image is {width}x{height}, its annotation says {record.width}x{record.height}"
            )
        target: dict[str, Any] = {
            "boxes": as_boxes(record.boxes, height=height, width=width),
            "labels": record.labels.clone(),
        }
        if record.segments is not None:
            where = str(record.image)
            masks = [rasterise(s, height=height, width=width, where=where) for s in record.segments]
            stacked = np.stack(masks) if masks else np.zeros((0, height, width), dtype=np.uint8)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(stacked))
        image = tv_tensors.Image(pixels)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target


def detection_transform(
    *, train: bool, size: int | None, max_size: int | None, scale_range: tuple[float, float], flip: bool
) -> v2.Compose:
    """The transforms v2 pipeline for detection samples; boxes and masks move with the image.

    Args:
        train: add the random parts (scale jitter, horizontal flip).
        size: the shorter side after resizing; None keeps the images' own size.
        max_size: the longer side is at most this (after ``size``); None for no limit.
        scale_range: training only: ``size`` is multiplied by a random factor in this range.
        flip: training only: random horizontal flips.
    """
    steps: list[v2.Transform] = []
    if size is not None:
        low, high = (round(size * s) for s in scale_range) if train else (size, size)
        if high > low:
            steps.append(v2.RandomResize(low, high + 1, antialias=True))
        else:
            steps.append(v2.Resize(low, max_size=max_size, antialias=True))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.ClampBoundingBoxes(),
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
    ]
    return v2.Compose(steps)


class DetectionDataModule(L.LightningDataModule):
    """What the detection DataModules share: transforms, datasets from records, and list-collated loaders.

    Subclasses fill :attr:`classes` and implement :meth:`read_records`.
    """

    classes: list[str]

    def __init__(
        self,
        *,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        size: int | None,
        max_size: int | None,
        scale_range: tuple[float, float],
        flip: bool,
    ) -> None:
        super().__init__()
        if not 0 < scale_range[0] <= scale_range[1]:
            raise DataError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self.size, self.max_size, self.flip = size, max_size, flip
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.datasets: dict[str, DetectionSamples] = {}
        #: boxes dropped per split by the clipping filter (degenerate or outside the image)
        self.dropped: dict[str, int] = {}

    @property
    def num_classes(self) -> int:
        """Object classes plus the background (label 0), the ``num_classes`` torchvision's detectors take."""
        return len(self.classes) + 1

    def read_records(self, split: str) -> list[DetectionRecord] | None:
        """The records of ``train``, ``val`` or ``test``, or None when that split has no data."""
        raise NotImplementedError

    def transform(self, *, train: bool) -> v2.Compose:
        """The pipeline of the training or the evaluation samples."""
        return detection_transform(
            train=train, size=self.size, max_size=self.max_size, scale_range=self.scale_range, flip=self.flip
        )

    def setup(self, stage: str | None = None) -> None:
        """Read the annotations of every split (images are decoded later, by the loader's workers)."""
        if self.datasets:
            return
        for split in ("train", "val", "test"):
            records = self.read_records(split)
            if records is not None:
                self.datasets[split] = DetectionSamples(records, self.transform(train=split == "train"))
        if "test" not in self.datasets and "val" in self.datasets:
            self.datasets["test"] = self.datasets["val"]

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_detection,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented batches: ``(list of images, list of targets)``."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | list[Any]:
        """Validation batches in order (an empty list, which skips validation, when there is none)."""
        if not self.datasets:
            self.setup()
        return self._loader("val", train=False) if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader:
        """Test batches in order (the validation set when there is no test set)."""
        if "test" not in self.datasets and self.datasets:
            raise DataError("no test data: give a test split (or a validation split, used for testing)")
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test batches, for ``python -m zoo.predict``."""
        return self.test_dataloader()


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from error
    except (UnicodeDecodeError, OSError) as error:
        raise DataError(f"{path}: cannot read ({error})") from error
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing the list {key!r} of a COCO annotation file")
    return data


class COCODetectionDataModule(DetectionDataModule):
    """Detection (and optionally instance masks) from COCO-format annotation files.

    Args:
        train_json: the training annotation file.
        train_images: the folder the training ``file_name`` entries are relative to.
        val_json: the validation annotation file; None for no validation.
        val_images: its image folder; defaults to ``train_images``.
        test_json: the test annotation file; None to test on the validation set.
        test_images: its image folder; defaults to ``val_images``.
        masks: add instance masks ``(N, H, W)`` rasterised from the polygons.
        keep_crowd: keep ``iscrowd`` annotations (dropped by default, as torchvision's references do).
        batch_size: images per batch per device.
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        num_workers: processes decoding images.
        size: the shorter side after resizing; None keeps the images' own size.
        max_size: the longer side is at most this; None for no limit.
        scale_range: training scale jitter: ``size`` times a random factor in this range.
        flip: random horizontal flips in training.
    """

    def __init__(
        self,
        train_json: str,
        train_images: str,
        *,
        val_json: str | None = None,
        val_images: str | None = None,
        test_json: str | None = None,
        test_images: str | None = None,
        masks: bool = False,
        keep_crowd: bool = False,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        size: int | None = 512,
        max_size: int | None = 1024,
        scale_range: tuple[float, float] = (1.0, 1.0),
        flip: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            size=size,
            max_size=max_size,
            scale_range=scale_range,
            flip=flip,
        )
        val_images = val_images or train_images
        self.files: dict[str, tuple[Path, Path] | None] = {
            "train": (Path(train_json).expanduser(), Path(train_images).expanduser()),
            "val": (Path(val_json).expanduser(), Path(val_images).expanduser()) if val_json else None,
            "test": (Path(test_json).expanduser(), Path(test_images or val_images).expanduser())
            if test_json
            else None,
        }
        self.masks, self.keep_crowd = masks, keep_crowd
        self._category_ids: list[int] | None = None
        self._classes: list[str] | None = None

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        """Category names in label order (label ``i`` is ``classes[i - 1]``), from the training json."""
        if self._classes is None:
            self._categories(_load_json(self._train_json), self._train_json)
        assert self._classes is not None
        return self._classes

    @property
    def _train_json(self) -> Path:
        files = self.files["train"]
        assert files is not None
        return files[0]

    def _categories(self, data: dict[str, Any], path: Path) -> dict[int, int]:
        """Category id → label; the training json fixes the labels and every other json must agree."""
        try:
            named = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: every category needs an integer 'id' and a 'name'") from error
        if self._category_ids is None:
            self._category_ids = [i for i, _ in named]
            self._classes = [n for _, n in named]
        elif named != list(zip(self._category_ids, self.classes, strict=True)):
            raise DataError(f"{path}: its categories differ from those of {self._train_json}")
        return {category: label for label, category in enumerate(self._category_ids, start=1)}

    def read_records(self, split: str) -> list[DetectionRecord] | None:
        """Parse the split's json: one record per image, with its kept annotations."""
        files = self.files[split]
        if files is None:
            return None
        path, folder = files
        data = _load_json(path)
        labels_of = self._categories(data, path)
        try:
            return self._records(data, path, folder, labels_of, split)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: malformed COCO entry ({type(error).__name__}: {error})") from error

    def _records(
        self, data: dict[str, Any], path: Path, folder: Path, labels_of: dict[int, int], split: str
    ) -> list[DetectionRecord]:
        images: dict[int, dict[str, Any]] = {int(entry["id"]): entry for entry in data["images"]}
        objects: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
        for ann in data["annotations"]:
            if int(ann["image_id"]) not in objects:
                raise DataError(
                    f"{path}: annotation {ann.get('id')} names image id {ann['image_id']}, not listed"
                )
            if ann.get("iscrowd", 0) and not self.keep_crowd:
                continue
            if int(ann["category_id"]) not in labels_of:
                raise DataError(
                    f"{path}: annotation {ann.get('id')} has unknown category {ann['category_id']}"
                )
            objects[int(ann["image_id"])].append(ann)
        records, dropped = [], []
        for image_id, entry in images.items():
            file = folder / str(entry["file_name"])
            if not file.is_file():
                raise DataError(f"{file}: image listed in {path} (id {image_id}) does not exist")
            height, width = int(entry["height"]), int(entry["width"])
            anns = objects[image_id]
            xywh = torch.tensor([[float(v) for v in a["bbox"]] for a in anns], dtype=torch.float32)
            xywh = xywh.reshape(-1, 4)
            boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
            boxes, keep = filter_boxes(boxes, height=height, width=width, where=f"{path} image {image_id}")
            dropped += [str(a.get("id")) for a, k in zip(anns, keep.tolist(), strict=True) if not k]
            labels = torch.tensor([labels_of[int(a["category_id"])] for a in anns], dtype=torch.int64)
            segments = None
            if self.masks:
                segments = [a.get("segmentation", []) for a, k in zip(anns, keep.tolist(), strict=True) if k]
            records.append(DetectionRecord(file, height, width, boxes[keep], labels[keep], segments))
        self.dropped[split] = len(dropped)
        if dropped:
            log.warning(
                "%s: dropped %d boxes that are degenerate or outside their image (annotation ids %s)",
                path,
                len(dropped),
                ", ".join(dropped[:10]) + (", ..." if len(dropped) > 10 else ""),
            )
        return records
