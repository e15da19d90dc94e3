"""Shapes: a synthetic set of circles, squares and triangles with labels, boxes and masks, made in memory.

Localization, detection and segmentation need data with boxes and masks; this set runs anywhere, with no
download, and is the same for the same ``seed`` on every machine. Each image is a random dark background with
Gaussian pixel noise and 1 to 4 objects (a random class, colour, size from 12 to 48 pixels, position anywhere
they fit). Later objects are drawn over earlier ones: a pixel belongs to the topmost object, an object's mask
and box are those of its visible part, and an object hidden entirely is dropped.

The targets follow :mod:`zoo.data.targets`: labels 1 (circle), 2 (square), 3 (triangle), 0 the background;
boxes ``XYXY`` in pixel edges (a mask covering columns 3..7 has ``x1 = 3``, ``x2 = 8``), tight around each
visible mask; objects listed in drawing order, so the last one is never occluded.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.targets import as_boxes, collate_detection
from zoo.errors import DataError

__all__ = ["SHAPE_CLASSES", "ShapesDataModule", "ShapesDataset", "ShapesMode", "collate_localization"]

ShapesMode = Literal["localization", "detection", "segmentation"]

#: the object classes, in label order: label ``i + 1`` is ``SHAPE_CLASSES[i]`` (0 is the background)
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
#: smallest and largest side, in pixels, of the square an object is drawn in
MIN_SIZE, MAX_SIZE = 12, 48
#: most objects an image may hold
MAX_OBJECTS = 10
#: images rasterised at once: bounds the memory of the (chunk, objects, H, W) intermediate tensors
_CHUNK = 256
_SPLITS = ("train", "val", "test")


def _draw(
    count: int, *, size: int, min_objects: int, max_objects: int, noise: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draw ``count`` images.

    Returns:
        ``uint8`` images ``(N, 3, H, W)``; ``uint8`` instance maps ``(N, H, W)`` (0 background, ``k + 1`` the
        visible pixels of slot ``k``); ``int64`` labels ``(N, K)`` (0 for an empty or hidden slot); ``float32``
        boxes ``(N, K, 4)`` (zeros where the label is 0). ``K`` is ``max_objects``.
    """
    n, k = count, max_objects
    # every random number is drawn here, up front, so the result does not depend on the chunk size
    drawn = torch.randint(min_objects, max_objects + 1, (n,), generator=generator)
    present = torch.arange(k) < drawn[:, None]
    labels = torch.randint(1, len(SHAPE_CLASSES) + 1, (n, k), generator=generator)
    sides = torch.randint(MIN_SIZE, MAX_SIZE + 1, (n, k), generator=generator)
    x0 = (torch.rand(n, k, generator=generator) * (size - sides + 1)).long()
    y0 = (torch.rand(n, k, generator=generator) * (size - sides + 1)).long()
    # objects: a random hue at a brightness of 0.6..1; background: dark, 0..0.3, so every object stands out
    colours = torch.rand(n, k, 3, generator=generator)
    colours = colours / colours.amax(-1, keepdim=True).clamp_min(1e-6)
    colours = colours * (0.6 + 0.4 * torch.rand(n, k, 1, generator=generator))
    background = 0.3 * torch.rand(n, 1, 3, generator=generator)
    palette = torch.cat([background, colours], 1)  # (N, K + 1, 3): index 0 is the background

    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    instances = torch.empty(n, size, size, dtype=torch.uint8)
    boxes = torch.zeros(n, k, 4)
    pixels = torch.arange(size, dtype=torch.float32)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        s = sides[part].float()[..., None, None]  # (B, K, 1, 1)
        left, top = x0[part].float()[..., None, None], y0[part].float()[..., None, None]
        col = pixels.view(1, 1, 1, size) - left  # pixel index relative to the object's square, (B, K, 1, W)
        row = pixels.view(1, 1, size, 1) - top  # (B, K, H, 1)
        in_square = (col >= 0) & (col < s) & (row >= 0) & (row < s)
        # distances from the centre, measured between pixel centres: a circle of diameter s spans s pixels
        dx, dy = col + 0.5 - s / 2, row + 0.5 - s / 2
        circle = dx.square() + dy.square() <= (s / 2).square()
        # apex up, base on the bottom row; row i is 2 * (i + 1) / 2 wide, so the top row holds 1-2 pixels
        triangle = in_square & (dx.abs() <= (row + 1) / 2)
        kind = labels[part][..., None, None]
        inside = torch.where(kind == 1, circle, torch.where(kind == 2, in_square, triangle))
        inside &= present[part][..., None, None]
        # later objects over earlier ones: the topmost object covering a pixel is the one with the largest slot
        idmap = (inside * torch.arange(1, k + 1, dtype=torch.uint8).view(1, k, 1, 1)).amax(1)
        instances[part] = idmap
        batch = idmap.shape[0]
        flat = idmap.long().view(batch, 1, -1).expand(-1, 3, -1)
        image = torch.gather(palette[part].transpose(1, 2), 2, flat).view(batch, 3, size, size)
        if noise > 0:
            image.add_(torch.randn(image.shape, generator=generator).mul_(noise))
        images[part] = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        visible = idmap[:, None] == torch.arange(1, k + 1, dtype=torch.uint8).view(1, k, 1, 1)  # (B, K, H, W)
        cols, rows = visible.any(2), visible.any(3)  # (B, K, W), (B, K, H)
        index = torch.arange(size)
        boxes[part] = torch.stack(
            [
                torch.where(cols, index, size).amin(-1),
                torch.where(rows, index, size).amin(-1),
                torch.where(cols, index, -1).amax(-1) + 1,
                torch.where(rows, index, -1).amax(-1) + 1,
            ],
            -1,
        ).float()
        hidden = ~cols.any(-1)
        labels[part] = labels[part].masked_fill(hidden, 0)
    boxes[labels == 0] = 0
    return images, instances, labels, boxes


def collate_localization(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, dict[str, Tensor]]:
    """One-object samples as stacked tensors: images ``(B, 3, H, W)``, labels ``(B,)``, boxes ``(B, 4)``."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), {
        "labels": torch.cat([t["labels"] for t in targets]),
        "boxes": torch.cat([t["boxes"].as_subclass(Tensor) for t in targets]),
    }


class ShapesDataset(Dataset):
    """One split of the shapes set, held in memory, giving samples of one mode.

    Args:
        images: ``uint8`` ``(N, 3, H, W)``.
        instances: ``uint8`` ``(N, H, W)``: 0 the background, ``k + 1`` the visible pixels of slot ``k``.
        labels: ``int64`` ``(N, K)``: the class of each slot, 0 for an empty or hidden one.
        boxes: ``float32`` ``(N, K, 4)`` ``XYXY`` boxes of the slots.
        mode: which target to give (see :class:`ShapesDataModule`).
        transform: a ``transforms.v2`` transform applied to ``(image, target)``.
    """

    def __init__(
        self,
        images: Tensor,
        instances: Tensor,
        labels: Tensor,
        boxes: Tensor,
        *,
        mode: ShapesMode,
        transform: v2.Transform | None = None,
    ) -> None:
        self.images, self.instances, self.labels, self.boxes = images, instances, labels, boxes
        self.mode, self.transform = mode, transform

    def __len__(self) -> int:
        return len(self.images)

    def target(self, index: int) -> dict[str, Any]:
        """The full target of image ``index``, untransformed: labels, boxes, instance masks, semantic mask."""
        height, width = self.images.shape[-2:]
        kept = (self.labels[index] > 0).nonzero().squeeze(1)
        instances = self.instances[index].long()
        lookup = torch.cat([torch.zeros(1, dtype=torch.long), self.labels[index]])
        return {
            "labels": self.labels[index, kept],
            "boxes": as_boxes(self.boxes[index, kept], height=height, width=width),
            "masks": tv_tensors.Mask((instances[None] == kept[:, None, None] + 1).to(torch.uint8)),
            "semantic": tv_tensors.Mask(lookup[instances]),
        }

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = tv_tensors.Image(self.images[index])
        full = self.target(index)
        sample: tuple[Any, Any]
        if self.mode == "segmentation":
            sample = (image, full["semantic"])
        elif self.mode == "localization":
            sample = (image, {"labels": full["labels"], "boxes": full["boxes"]})
        else:
            sample = (image, full)
        return self.transform(sample) if self.transform is not None else sample


class ShapesDataModule(ZooDataModule):
    """Synthetic circles, squares and triangles for localization, detection and segmentation; no download.

    Every split is drawn once in :meth:`setup` from its own generator seeded by ``seed`` and kept in memory as
    ``uint8`` (2,400 images of 128x128 take about a second on two CPU cores; see docs/detection.md).
    Images come as ``float32`` in 0..1, unnormalised.

    Modes:
        ``"localization"``: exactly one object per image (``min_objects``/``max_objects`` are not used);
        samples ``(image, {"labels": (1,), "boxes": (1, 4)})``, batches ``(B, 3, H, W)`` images with labels
        ``(B,)`` and boxes ``(B, 4)``.
        ``"detection"``: samples ``(image, target)`` with ``labels``, ``boxes``, ``masks`` and ``semantic`` as in
        :mod:`zoo.data.targets`; batches are two lists (:func:`zoo.data.targets.collate_detection`).
        ``"segmentation"``: samples ``(image, semantic)``; batches ``(B, 3, H, W)`` images and ``(B, H, W)``
        ``int64`` masks with values 0 (background) to 3; there is no ignored pixel.

    Args:
        mode: which task the samples are for (above).
        image_size: side of the square images, at least 48 (the largest object).
        num_train: images in the training split.
        num_val: images in the validation split.
        num_test: images in the test split.
        batch_size: samples per batch, for every split.
        seed: seeds the drawing; the same seed gives the same images and targets everywhere.
        min_objects: fewest objects drawn in an image (detection and segmentation). An object entirely hidden
            by later ones is dropped, so an image may show fewer, but never none.
        max_objects: most objects drawn in an image, at most 10.
        noise: standard deviation of the Gaussian noise added to every pixel, in 0..1 units; 0 for none.
        flip: random horizontal flips of the training samples (boxes and masks move with the image).
    """

    #: every mode's task; an instance serves its own ``mode`` only
    kinds: ClassVar[frozenset[TaskKind]] = frozenset(get_args(ShapesMode))
    #: names of the object classes, in label order (label 1 is ``classes[0]``)
    classes: tuple[str, ...] = SHAPE_CLASSES

    def __init__(
        self,
        mode: ShapesMode = "detection",
        *,
        image_size: int = 128,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 200,
        batch_size: int = 32,
        seed: int = 0,
        min_objects: int = 1,
        max_objects: int = 4,
        noise: float = 0.05,
        flip: bool = True,
    ) -> None:
        super().__init__()
        if mode not in get_args(ShapesMode):
            raise DataError(f"mode must be one of {', '.join(get_args(ShapesMode))}, got {mode!r}")
        if image_size < MAX_SIZE:
            raise DataError(f"image_size must be at least {MAX_SIZE} (the largest object), got {image_size}")
        for name, count in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if count < 1:
                raise DataError(f"{name} must be at least 1, got {count}")
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if seed < 0:
            raise DataError(f"seed must be 0 or more, got {seed}")
        if not 1 <= min_objects <= max_objects <= MAX_OBJECTS:
            raise DataError(
                f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS}, "
                f"got min_objects={min_objects}, max_objects={max_objects}"
            )
        if not 0 <= noise <= 1:
            raise DataError(f"noise must be from 0 to 1 (a standard deviation in 0..1 units), got {noise}")
        self.mode: ShapesMode = mode
        # the contract's instance narrowing of a class-level declaration, which mypy's ClassVar rule forbids
        self.kinds = frozenset({mode})  # type: ignore[misc]
        self.image_size, self.seed = image_size, seed
        self.batch_size = self.eval_batch_size = batch_size
        # in memory already: worker processes would only add start-up time
        self.num_workers = 0
        self.collate_fn = {"localization": collate_localization, "detection": collate_detection}.get(mode)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.min_objects, self.max_objects = (1, 1) if mode == "localization" else (min_objects, max_objects)
        self.noise, self.flip = noise, flip

    @property
    def num_classes(self) -> int:
        """Object classes plus the background (label 0): 4, as torchvision's detectors and segmenters count them
        and as the VOC and COCO DataModules give it."""
        return len(self.classes) + 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images, for the model summary's output shapes."""
        return (3, self.image_size, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        """Draw the three splits (once; later calls do nothing)."""
        if self.datasets:
            return
        for offset, split in enumerate(_SPLITS):
            generator = torch.Generator().manual_seed(self.seed * len(_SPLITS) + offset)
            images, instances, labels, boxes = _draw(
                self.sizes[split],
                size=self.image_size,
                min_objects=self.min_objects,
                max_objects=self.max_objects,
                noise=self.noise,
                generator=generator,
            )
            steps: list[v2.Transform] = [v2.RandomHorizontalFlip()] if split == "train" and self.flip else []
            transform = v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])
            self.datasets[split] = ShapesDataset(
                images, instances, labels, boxes, mode=self.mode, transform=transform
            )
