"""COCO-format annotation files, and the annotated-image records and Dataset that detection data is read into.

The json is the one COCO publishes (``instances_train2017.json``) and most labelling tools export::

    {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}, ...],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 18, "bbox": [x, y, w, h],
                      "iscrowd": 0, "segmentation": [[x1, y1, x2, y2, ...]]}, ...],
     "categories": [{"id": 18, "name": "dog"}, ...]}

Each image becomes a :class:`DetectionRecord` (VOC's XML becomes the same records, :mod:`zoo.data.readers.voc`):
``bbox`` ``[x, y, w, h]`` becomes ``XYXY``, boxes are clipped to the image and those under one pixel dropped
(:func:`filter_boxes`). :class:`DetectionSamples` decodes and transforms a record into a sample of
:mod:`zoo.data.targets`, with instance masks rasterised from the polygons with PIL when the record keeps its
segments. Run-length encoded (RLE) segmentations need ``pycocotools``, used when installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from zoo.data.targets import as_boxes, check_boxes
from zoo.errors import DataError

__all__ = [
    "DetectionRecord",
    "DetectionSample",
    "DetectionSamples",
    "coco_categories",
    "coco_records",
    "decode_rgb",
    "filter_boxes",
    "load_coco_json",
    "rasterise",
]

#: one sample: the image ``(3, H, W)`` and its target dict (:mod:`zoo.data.targets`)
DetectionSample = tuple[tv_tensors.Image, dict[str, Any]]


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


def decode_rgb(path: Path) -> Tensor:
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


class DetectionSamples(Dataset[DetectionSample]):
    """Decodes and transforms one record into ``(image, target)`` as :mod:`zoo.data.targets` describes.

    Args:
        records: the annotated images.
        transform: a ``transforms.v2`` transform of ``(image, target)``; None leaves the ``uint8`` image as is.
    """

    def __init__(self, records: Sequence[DetectionRecord], transform: v2.Transform | None = None) -> None:
        self.records, self.transform = list(records), transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> DetectionSample:
        record = self.records[index]
        pixels = decode_rgb(record.image)
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


# ---- the annotation json ---------------------------------------------------------------------------------


def load_coco_json(path: Path) -> dict[str, Any]:
    """Read a COCO annotation file: a dict with the lists ``images``, ``annotations`` and ``categories``.

    Raises:
        DataError: the file is missing, unreadable, not JSON, or lacks one of the three lists.
    """
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


def coco_categories(data: dict[str, Any], path: Path) -> list[tuple[int, str]]:
    """The ``(id, name)`` of every category of a loaded annotation file, sorted by id."""
    try:
        return sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: every category needs an integer 'id' and a 'name'") from error


def coco_records(
    data: dict[str, Any],
    path: Path,
    folder: Path,
    labels_of: dict[int, int],
    *,
    keep_crowd: bool = False,
    masks: bool = False,
) -> tuple[list[DetectionRecord], list[str]]:
    """One record per image of a loaded annotation file, with its kept annotations.

    Args:
        data: the file's content, from :func:`load_coco_json`.
        path: the file, named in errors.
        folder: the folder the images' ``file_name`` entries are relative to.
        labels_of: category id → 1-based label.
        keep_crowd: keep ``iscrowd`` annotations (dropped by default, as torchvision's references do).
        masks: keep every object's ``segmentation`` in its record, for :func:`rasterise`.

    Returns:
        The records, and the ids of the annotations dropped because their boxes are degenerate or outside
        their image.

    Raises:
        DataError: an entry is malformed, names an unlisted image or an unknown category, or an image is missing.
    """
    try:
        return _records(data, path, folder, labels_of, keep_crowd=keep_crowd, masks=masks)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: malformed COCO entry ({type(error).__name__}: {error})") from error


def _records(
    data: dict[str, Any],
    path: Path,
    folder: Path,
    labels_of: dict[int, int],
    *,
    keep_crowd: bool,
    masks: bool,
) -> tuple[list[DetectionRecord], list[str]]:
    images: dict[int, dict[str, Any]] = {int(entry["id"]): entry for entry in data["images"]}
    objects: dict[int, list[dict[str, Any]]] = {i: [] for i in images}
    for ann in data["annotations"]:
        if int(ann["image_id"]) not in objects:
            raise DataError(
                f"{path}: annotation {ann.get('id')} names image id {ann['image_id']}, not listed"
            )
        if ann.get("iscrowd", 0) and not keep_crowd:
            continue
        if int(ann["category_id"]) not in labels_of:
            raise DataError(f"{path}: annotation {ann.get('id')} has unknown category {ann['category_id']}")
        objects[int(ann["image_id"])].append(ann)
    records, dropped = [], []
    for image_id, entry in images.items():
        file = folder / str(entry["file_name"])
        if not file.is_file():
            raise DataError(f"{file}: image listed in {path} (id {image_id}) does not exist")
        height, width = int(entry["height"]), int(entry["width"])
        anns = objects[image_id]
        xywh = torch.tensor([[float(v) for v in a["bbox"]] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        boxes, keep = filter_boxes(boxes, height=height, width=width, where=f"{path} image {image_id}")
        dropped += [str(a.get("id")) for a, k in zip(anns, keep.tolist(), strict=True) if not k]
        labels = torch.tensor([labels_of[int(a["category_id"])] for a in anns], dtype=torch.int64)
        segments = None
        if masks:
            segments = [a.get("segmentation", []) for a, k in zip(anns, keep.tolist(), strict=True) if k]
        records.append(DetectionRecord(file, height, width, boxes[keep], labels[keep], segments))
    return records, dropped
