"""PASCAL VOC's files: the XML annotations, the image lists, and the palette PNGs of class indices.

Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010. The layout, as unpacked from
the official tar files (and as torchvision's ``VOCDetection`` downloads it)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/Annotations/<id>.xml              detection
    VOCdevkit/VOC2012/ImageSets/Main/<split>.txt         detection splits: train, val, trainval (2007: test)
    VOCdevkit/VOC2012/SegmentationClass/<id>.png         segmentation, palette PNG of class indices
    VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt segmentation splits

Boxes: VOC counts pixels from 1 and includes both ends, so ``xmin..xmax`` becomes ``XYXY``
``(xmin - 1, ymin - 1, xmax, ymax)`` in the 0-based continuous coordinates torchvision uses. The XML is parsed
with :mod:`xml.etree.ElementTree`, which never fetches external entities.

Segmentation masks are palette PNGs whose pixel values are the class indices: 0 background, 1..20 the classes
in :data:`VOC_CLASSES` order, 255 the object borders, which count for nothing (:data:`~zoo.data.targets.IGNORE_INDEX`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from zoo.data.readers.coco import DetectionRecord, decode_rgb, filter_boxes
from zoo.errors import DataError

__all__ = [
    "VOC_CLASSES",
    "SegmentationSamples",
    "image_size",
    "parse_voc_xml",
    "read_class_png",
    "read_image_ids",
    "voc_detection_records",
    "voc_segmentation_pairs",
]

#: The 20 VOC classes; label ``i`` (1-based, 0 is the background) is ``VOC_CLASSES[i - 1]``.
VOC_CLASSES: tuple[str, ...] = tuple(
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
    "pottedplant sheep sofa train tvmonitor".split()
)


def read_image_ids(folder: Path, lists: str, split: str) -> list[str]:
    """The image ids of ``ImageSets/<lists>/<split>.txt`` in a ``VOC<year>`` folder, in file order."""
    path = folder / "ImageSets" / lists / f"{split}.txt"
    # the Main/<class>_<split>.txt lists carry a second column; the plain lists hold one id a line
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_voc_xml(path: Path, *, keep_difficult: bool) -> tuple[int, int, list[list[float]], list[int]]:
    """Read one VOC annotation file.

    Returns:
        The image's height and width, the ``XYXY`` boxes (0-based) and their 1-based labels.

    Raises:
        DataError: the file is missing, is not XML, lacks a field, or names a class outside :data:`VOC_CLASSES`.
    """
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except ET.ParseError as error:
        raise DataError(f"{path}: not valid XML ({error})") from error

    def number(node: ET.Element, tag: str) -> float:
        text = node.findtext(tag)
        try:
            return float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DataError(f"{path}: <{tag}> is missing or not a number ({text!r})") from None

    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: no <size> element")
    height, width = int(number(size, "height")), int(number(size, "width"))
    boxes, labels = [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise DataError(f"{path}: unknown class {name!r}; VOC has {', '.join(VOC_CLASSES)}")
        if not keep_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: object {name!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        labels.append(VOC_CLASSES.index(name) + 1)
    return height, width, boxes, labels


def voc_detection_records(
    folder: Path, split: str, *, keep_difficult: bool
) -> tuple[list[DetectionRecord], int]:
    """The records of every image in ``ImageSets/Main/<split>.txt``, from their XML annotations.

    Objects marked ``difficult`` are dropped unless ``keep_difficult``; boxes are clipped to the image and those
    under one pixel dropped (:func:`~zoo.data.readers.coco.filter_boxes`).

    Returns:
        The records, and how many boxes the clipping filter dropped.
    """
    records, dropped = [], 0
    for image_id in read_image_ids(folder, "Main", split):
        xml = folder / "Annotations" / f"{image_id}.xml"
        height, width, boxes, labels = parse_voc_xml(xml, keep_difficult=keep_difficult)
        image = folder / "JPEGImages" / f"{image_id}.jpg"
        if not image.is_file():
            raise DataError(f"{image}: image listed in ImageSets/Main/{split}.txt does not exist")
        clipped, keep = filter_boxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            height=height,
            width=width,
            where=str(xml),
        )
        dropped += int((~keep).sum())
        label_tensor = torch.tensor(labels, dtype=torch.int64)
        records.append(DetectionRecord(image, height, width, clipped[keep], label_tensor[keep]))
    return records, dropped


def read_class_png(path: Path) -> np.ndarray:
    """A VOC ``SegmentationClass`` PNG as ``uint8`` ``(H, W)`` class indices (255: ignore).

    The PNG is palette-coded: its pixel values are the indices themselves, whatever colours the palette shows.
    """
    try:
        with Image.open(path) as png:
            if png.mode not in ("P", "L"):
                raise DataError(
                    f"{path}: expected a palette (or grey) PNG of class indices, got mode {png.mode}"
                )
            return np.array(png, dtype=np.uint8)  # a writable copy, for torch.from_numpy
    except OSError as error:
        raise DataError(f"{path}: cannot read the mask ({error})") from error


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, from its header, without decoding the pixels."""
    try:
        with Image.open(path) as file:
            return file.size
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from error


def voc_segmentation_pairs(folder: Path, split: str) -> list[tuple[Path, Path]]:
    """The ``(JPEG, PNG mask)`` of every image in ``ImageSets/Segmentation/<split>.txt``.

    Raises:
        DataError: a listed file is missing, or a mask's size differs from its image's (read from the headers,
            so that it is reported here in one line and not later inside a loader's worker).
    """
    pairs = []
    for image_id in read_image_ids(folder, "Segmentation", split):
        image = folder / "JPEGImages" / f"{image_id}.jpg"
        mask = folder / "SegmentationClass" / f"{image_id}.png"
        for path in (image, mask):
            if not path.is_file():
                raise DataError(f"{path}: listed in ImageSets/Segmentation/{split}.txt but does not exist")
        if (mask_size := image_size(mask)) != (picture_size := image_size(image)):
            raise DataError(
                f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {image.name} is "
                f"{picture_size[0]}x{picture_size[1]}"
            )
        pairs.append((image, mask))
    return pairs


class SegmentationSamples(Dataset[tuple[tv_tensors.Image, tv_tensors.Mask]]):
    """``(image, mask)`` from pairs of JPEG and palette PNG, through a transform: the mask is ``int64`` ``(H, W)``
    class indices, 255 ignored (the same sample as ``ShapesDataModule(mode="segmentation")`` gives).

    Args:
        pairs: ``(image file, mask file)`` of each sample.
        transform: a ``transforms.v2`` transform of ``(image, mask)``.
    """

    def __init__(self, pairs: list[tuple[Path, Path]], transform: v2.Transform) -> None:
        self.pairs, self.transform = pairs, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image_path, mask_path = self.pairs[index]
        image = tv_tensors.Image(decode_rgb(image_path))
        mask = tv_tensors.Mask(torch.from_numpy(read_class_png(mask_path)).long())
        if mask.shape != image.shape[-2:]:
            raise DataError(f"{mask_path}: mask is {tuple(mask.shape)}, its image {tuple(image.shape[-2:])}")
        image, mask = self.transform(image, mask)
        return image, mask
