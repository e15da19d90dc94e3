"""PASCAL VOC 2007 and 2012: detection from the XML annotations, segmentation from the palette PNGs.

The files and their layout are read by :mod:`zoo.data.readers.voc`; this module finds them (``root``,
``$ZOO_DATA_DIR/voc``, the system dataset folders, ``~/.cache/zoo/voc``, or a download through torchvision) and
makes the splits, transforms and loaders. Objects marked ``difficult`` are dropped unless ``keep_difficult``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torchvision import datasets, tv_tensors
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule, locate_dataset
from zoo.data.detection import DetectionDataModule
from zoo.data.readers.coco import DetectionRecord
from zoo.data.readers.voc import (
    VOC_CLASSES,
    SegmentationSamples,
    voc_detection_records,
    voc_segmentation_pairs,
)
from zoo.data.targets import IGNORE_INDEX
from zoo.errors import DataError

__all__ = ["VOCDetectionDataModule", "VOCSegmentationDataModule", "collate_padded", "find_voc_folder"]

log = logging.getLogger(__name__)

#: the archive each year's train/val images come in, for the "how to get it" message
_ARCHIVES = {
    "2007": "VOCtrainval_06-Nov-2007.tar (and VOCtest_06-Nov-2007.tar)",
    "2012": "VOCtrainval_11-May-2012.tar",
}


def find_voc_folder(
    root: str | None, year: str, lists: str, splits: list[str], data: str, *, download: bool
) -> Path:
    """The ``VOC<year>`` folder holding ``ImageSets/<lists>/<split>.txt`` for every split, ``JPEGImages`` and
    ``data``; downloaded through torchvision first when allowed and absent; otherwise a one-line DataError."""
    if year not in _ARCHIVES:
        raise DataError(f"VOC year must be one of {', '.join(_ARCHIVES)}, got {year!r}")

    def holds(folder: Path) -> bool:
        lists_there = all((folder / "ImageSets" / lists / f"{s}.txt").is_file() for s in splits)
        return lists_there and (folder / "JPEGImages").is_dir() and (folder / data).is_dir()

    def fetch(target: Path) -> None:
        make = datasets.VOCSegmentation if lists == "Segmentation" else datasets.VOCDetection
        for split in dict.fromkeys(splits):
            make(str(target), year=year, image_set=split, download=True)

    wanted = ", ".join(f"ImageSets/{lists}/{s}.txt" for s in dict.fromkeys(splits))
    return locate_dataset(
        root,
        "voc",
        (f"VOCdevkit/VOC{year}", f"VOC{year}", ""),
        holds=holds,
        download=fetch if download else None,
        title=f"VOC{year}",
        looked_for=f"JPEGImages, {data} and {wanted}",
        how_to_get=f", or unpack {_ARCHIVES[year]} from http://host.robots.ox.ac.uk/pascal/VOC/ there",
    )


class VOCDetectionDataModule(DetectionDataModule):
    """PASCAL VOC detection: ``(image, {"boxes", "labels"})`` samples from the XML annotations.

    Args:
        root: a folder holding ``VOCdevkit/VOC<year>`` (or ``VOC<year>``, or the year's folder itself); when None,
            ``$ZOO_DATA_DIR/voc``, the system dataset folders and ``~/.cache/zoo/voc`` are searched.
        year: ``"2007"`` or ``"2012"``.
        train_split: the ``ImageSets/Main`` list to train on (``train``, ``trainval``).
        val_split: the list to validate on; None for no validation.
        test_split: the list to test on (``test`` exists for 2007 only); None tests on ``val_split``.
        keep_difficult: keep the objects marked ``difficult`` (dropped by default, as VOC's own evaluation
            ignores them).
        download: download the year's archives through torchvision when they are found nowhere.
        batch_size: images per batch per device.
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        num_workers: processes decoding images.
        size: the shorter side after resizing; None keeps the images' own size.
        max_size: the longer side is at most this; None for no limit.
        scale_range: training scale jitter: ``size`` times a random factor in this range.
        flip: random horizontal flips in training.
    """

    classes = list(VOC_CLASSES)

    def __init__(
        self,
        root: str | None = None,
        *,
        year: str = "2012",
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = None,
        keep_difficult: bool = False,
        download: bool = False,
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
        self.root, self.year, self.download = root, str(year), download
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.keep_difficult = keep_difficult

    def _folder(self, *, download: bool) -> Path:
        wanted = [s for s in self.splits.values() if s is not None]
        folder = find_voc_folder(self.root, self.year, "Main", wanted, "Annotations", download=download)
        self.source = str(folder)
        return folder

    def prepare_data(self) -> None:
        """Find the files, downloading them on one process per node when ``download`` is set."""
        self._folder(download=self.download)

    def read_records(self, split: str) -> list[DetectionRecord] | None:
        """Parse the XML of every image in the split's ``ImageSets/Main`` list."""
        name = self.splits[split]
        if name is None:
            return None
        records, dropped = voc_detection_records(
            self._folder(download=False), name, keep_difficult=self.keep_difficult
        )
        self.dropped[split] = dropped
        if dropped:
            log.warning(
                "VOC%s %s: dropped %d degenerate boxes (under 1 pixel after clipping)",
                self.year,
                name,
                dropped,
            )
        return records


def collate_padded(batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack samples of different sizes: images padded with 0 and masks with 255 (ignored) at the bottom and
    right, to the largest height and width in the batch.

    Returns:
        Images ``(B, 3, H, W)`` and masks ``(B, H, W)``; padded pixels count for nothing in the loss or metrics.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], height, width, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), height, width), IGNORE_INDEX, dtype=torch.int64)
    for index, (image, mask) in enumerate(batch):
        images[index, :, : image.shape[-2], : image.shape[-1]] = image
        masks[index, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


class VOCSegmentationDataModule(ZooDataModule):
    """PASCAL VOC semantic segmentation: batches of images ``(B, 3, H, W)`` and masks ``(B, H, W)``.

    Masks are ``int64`` class indices: 0 the background, 1..20 :data:`VOC_CLASSES`, 255 ignored (object borders
    and padding). Training samples are resized so that their shorter side is ``crop_size`` times a random factor
    in ``scale_range`` (torchvision's segmentation reference), randomly cropped to ``crop_size`` (padded
    with 255, the ignore index, where the image is smaller) and flipped. Evaluation samples, by default, are
    resized so their shorter side is ``crop_size`` and centre-cropped to ``crop_size`` square; with ``eval_size``
    they are whole images with the shorter side resized to ``eval_size`` (torchvision's reference evaluates at
    520), stacked by padding each batch to its largest image with 255 in the masks (batch size 1 pads nothing).
    Images are ``float32`` in 0..1 (the model normalises).

    Args:
        root: a folder holding ``VOCdevkit/VOC<year>`` (see :class:`VOCDetectionDataModule`).
        year: ``"2007"`` or ``"2012"``.
        train_split: the ``ImageSets/Segmentation`` list to train on.
        val_split: the list to validate on; None for no validation.
        test_split: the list to test on; None tests on ``val_split``.
        download: download the year's archives through torchvision when they are found nowhere.
        crop_size: side of the square samples.
        scale_range: training scale jitter: the shorter side becomes ``crop_size`` times a factor in this range.
        flip: random horizontal flips in training.
        batch_size: images per batch per device.
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        num_workers: processes decoding images.
        eval_size: evaluate whole images, shorter side resized to this; None: the centre ``crop_size`` square.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"segmentation"})
    #: the object classes: label ``i`` is ``classes[i - 1]``, 0 is the background (not listed)
    classes = list(VOC_CLASSES)

    def __init__(
        self,
        root: str | None = None,
        *,
        year: str = "2012",
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = None,
        download: bool = False,
        crop_size: int = 320,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        eval_size: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 < scale_range[0] <= scale_range[1]:
            raise DataError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
        if crop_size < 1 or (eval_size is not None and eval_size < 1):
            raise DataError(f"crop_size and eval_size must be at least 1, got {crop_size} and {eval_size}")
        self.root, self.year, self.download = root, str(year), download
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.crop_size, self.flip = crop_size, flip
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.eval_size = num_workers, eval_size
        # whole evaluation images differ in size: padded to each batch's largest (training crops need no padding)
        self.collate_fn = collate_padded if eval_size is not None else None

    @property
    def num_classes(self) -> int:
        """21: the background and the 20 VOC classes (255 is ignored, not a class)."""
        return len(self.classes) + 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches, for the model summary's output shapes."""
        return (3, self.crop_size, self.crop_size)

    def transform(self, *, train: bool) -> v2.Compose:
        """The pipeline of the training or the evaluation samples; the mask moves with the image."""
        size = self.crop_size
        steps: list[v2.Transform] = []
        if train:
            low, high = (round(size * s) for s in self.scale_range)
            steps.append(
                v2.RandomResize(low, high + 1, antialias=True)
                if high > low
                else v2.Resize(low, antialias=True)
            )
            steps.append(
                v2.RandomCrop(
                    size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
                )
            )
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
        elif self.eval_size is not None:
            steps.append(v2.Resize(self.eval_size, antialias=True))
        else:
            steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
        return v2.Compose(steps)

    def prepare_data(self) -> None:
        """Find the files, downloading them on one process per node when ``download`` is set."""
        self._folder(download=self.download)

    def _folder(self, *, download: bool) -> Path:
        wanted = [s for s in self.splits.values() if s is not None]
        folder = find_voc_folder(
            self.root, self.year, "Segmentation", wanted, "SegmentationClass", download=download
        )
        self.source = str(folder)
        return folder

    def setup(self, stage: str | None = None) -> None:
        """List the image and mask files of every split and check that each mask has its image's size."""
        if self.datasets:
            return
        folder = self._folder(download=False)
        for split, name in self.splits.items():
            if name is not None:
                self.datasets[split] = SegmentationSamples(
                    voc_segmentation_pairs(folder, name), self.transform(train=split == "train")
                )
        if "test" not in self.datasets and "val" in self.datasets:
            self.datasets["test"] = self.datasets["val"]
