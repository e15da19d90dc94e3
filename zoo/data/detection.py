"""What the detection DataModules (VOC, COCO-format json) share: the transforms v2 pipeline and the
DataModule that turns records (:mod:`zoo.data.readers.coco`) into list-collated loaders.

Samples follow :mod:`zoo.data.targets`; batches are two lists, images and targets
(:func:`~zoo.data.targets.collate_detection`), the form torchvision's detection models take.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.readers.coco import DetectionRecord, DetectionSamples
from zoo.data.targets import collate_detection
from zoo.errors import DataError

__all__ = ["DetectionDataModule", "detection_transform"]


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


class DetectionDataModule(ZooDataModule):
    """Detection data from per-image records: transforms, one dataset per split, list-collated loaders.

    Subclasses fill :attr:`classes` (the object classes; label ``i`` is ``classes[i - 1]``, 0 the background)
    and implement :meth:`read_records`. The test split is the validation split when there is no test split.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"detection"})
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
        self.collate_fn = collate_detection
        self.size, self.max_size, self.flip = size, max_size, flip
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
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
