"""Unlabelled images for style transfer: a folder of content photos, or scikit-image's sample photos.

Johnson et al. trained on COCO 2014's 80,000 training images, which is simply a folder of JPEG files: point
``root`` at it (or at any folder of photos; sub-folders are searched too). With no ``root``, the DataModule uses
the colour photos that ship inside scikit-image (:data:`~zoo.data.readers.images.SAMPLES`), so a recipe runs
anywhere, offline. The files are read by :mod:`zoo.data.readers.images`.

Images are decoded by worker processes with torchvision's transforms v2: training images are resized so that
their shorter side is ``size`` and randomly cropped to ``size`` x ``size``; validation and test images are
centre-cropped instead. Batches are ``(images, names)``: float images in 0..1 ``(B, 3, size, size)`` (not
normalised: the loss network normalises, and the transformer's output is an image) and the images' names.

``zoo.predict`` stylises every image of ``predict_root`` (default: the validation images), one at a time at
its own aspect ratio, its shorter side resized to ``predict_size``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.readers.images import SAMPLES, SKIMAGE_PREFIX, ImageFiles, find_images, image_channels
from zoo.errors import DataError

__all__ = ["ImagesDataModule"]


class ImagesDataModule(ZooDataModule):
    """Content images for training a style transfer network.

    Args:
        root: a folder of images (searched recursively); None uses scikit-image's sample photos
            (:data:`~zoo.data.readers.images.SAMPLES`).
        size: side of the square training crops (Johnson et al.: 256).
        batch_size: images per batch per device (Johnson et al.: 4).
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        val_size: images held out for validation (and the final test), as a count or a fraction (at least one
            image); chosen by a permutation seeded with ``seed``.
        seed: seeds the held-out split.
        num_workers: processes decoding images.
        predict_root: the folder of images ``zoo.predict`` stylises; None stylises the validation images.
        predict_size: shorter side of the images ``zoo.predict`` stylises; None keeps their own size.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"style_transfer"})
    #: content images have no classes
    classes: tuple[str, ...] = ()
    #: the images to stylise keep their own sizes, so they cannot be stacked: one a batch
    predict_batch_size = 1

    def __init__(
        self,
        root: str | None = None,
        *,
        size: int = 256,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        val_size: int | float = 0.05,
        seed: int = 0,
        num_workers: int = 2,
        predict_root: str | None = None,
        predict_size: int | None = 512,
    ) -> None:
        super().__init__()
        if size < 16 or batch_size < 1 or (predict_size is not None and predict_size < 16):
            raise DataError(
                f"size and predict_size must be at least 16 and batch_size at least 1, got size={size}, "
                f"predict_size={predict_size}, batch_size={batch_size}"
            )
        self.root, self.predict_root = root, predict_root
        self.source = root if root is not None else "scikit-image's sample photos"
        self.size, self.predict_size = size, predict_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.val_size, self.seed, self.num_workers = val_size, seed, num_workers

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the training batches, for the model summary's output shapes."""
        return (3, self.size, self.size)

    def sources(self) -> list[str]:
        """The content images: files under ``root``, or ``skimage:NAME`` for the sample photos.

        Raises:
            DataError: before any training, for a file whose header does not read as an image.
        """
        if self.root is None:
            return [f"{SKIMAGE_PREFIX}{name}" for name in SAMPLES]
        files = find_images(self.root)
        image_channels(files)  # reads every header: a file that is no image is refused now, not mid-epoch
        return [str(path) for path in files]

    def _transform(self, kind: str) -> v2.Compose:
        steps: list[torch.nn.Module] = []
        if kind == "train":
            steps += [v2.Resize(self.size, antialias=True), v2.RandomCrop(self.size)]
        elif kind == "eval":
            steps += [v2.Resize(self.size, antialias=True), v2.CenterCrop(self.size)]
        elif self.predict_size is not None:
            steps += [v2.Resize(self.predict_size, antialias=True)]
        return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])

    def setup(self, stage: str | None = None) -> None:
        """List the images and split them, seeded, into training and held-out images."""
        if self.datasets:
            return
        sources = self.sources()
        n_val = round(self.val_size * len(sources)) if isinstance(self.val_size, float) else self.val_size
        n_val = max(1, n_val)
        if n_val >= len(sources):
            raise DataError(
                f"val_size {self.val_size} leaves no training images out of {len(sources)}"
                + ("" if self.root is None else f" in {self.root}")
            )
        order = torch.randperm(len(sources), generator=torch.Generator().manual_seed(self.seed)).tolist()
        held_out = [sources[i] for i in sorted(order[:n_val])]
        self.datasets["train"] = ImageFiles([sources[i] for i in order[n_val:]], self._transform("train"))
        # a style transfer network has no separate test set: it is tested on the held-out images again
        self.datasets["val"] = self.datasets["test"] = ImageFiles(held_out, self._transform("eval"))
        predict = held_out if self.predict_root is None else find_images(self.predict_root)
        self.datasets["predict"] = ImageFiles(predict, self._transform("predict"))
