"""Object detection on your own data in the COCO format: one annotation json and a folder of images.

The files are read by :mod:`zoo.data.readers.coco`. Samples follow :mod:`zoo.data.targets`: categories, sorted
by id, become the contiguous labels 1, 2, ... (0 is the background) with their names in
:attr:`COCODetectionDataModule.classes`; ``bbox`` ``[x, y, w, h]`` becomes ``XYXY``; ``iscrowd`` annotations
are dropped unless ``keep_crowd``; boxes are clipped to the image and those under one pixel dropped
(:func:`~zoo.data.targets.check_boxes`), counted and logged once per split.

With ``masks=True`` every object also gets an instance mask rasterised from its polygons with PIL. Run-length
encoded (RLE) segmentations need ``pycocotools``, used when installed; without it such an annotation is a
:class:`~zoo.errors.DataError` (crowd regions, which COCO stores as RLE, are dropped by default anyway).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.data.detection import DetectionDataModule
from zoo.data.readers.coco import DetectionRecord, coco_categories, coco_records, load_coco_json
from zoo.errors import DataError

__all__ = ["COCODetectionDataModule"]

log = logging.getLogger(__name__)


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
        self.source = ", ".join(str(files[0]) for files in self.files.values() if files is not None)
        self._category_ids: list[int] | None = None
        self._classes: list[str] | None = None

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        """Category names in label order (label ``i`` is ``classes[i - 1]``), from the training json."""
        if self._classes is None:
            self._categories(load_coco_json(self._train_json), self._train_json)
        assert self._classes is not None
        return self._classes

    @property
    def _train_json(self) -> Path:
        files = self.files["train"]
        assert files is not None
        return files[0]

    def _categories(self, data: dict[str, Any], path: Path) -> dict[int, int]:
        """Category id → label; the training json fixes the labels and every other json must agree."""
        named = coco_categories(data, path)
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
        data = load_coco_json(path)
        labels_of = self._categories(data, path)
        records, dropped = coco_records(
            data, path, folder, labels_of, keep_crowd=self.keep_crowd, masks=self.masks
        )
        self.dropped[split] = len(dropped)
        if dropped:
            log.warning(
                "%s: dropped %d boxes that are degenerate or outside their image (annotation ids %s)",
                path,
                len(dropped),
                ", ".join(dropped[:10]) + (", ..." if len(dropped) > 10 else ""),
            )
        return records
