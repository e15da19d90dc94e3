"""Your own images, one folder per class, through torchvision's ``ImageFolder`` and transforms v2.

Layout::

    root/train/<class>/*.jpg     required
    root/val/<class>/*.jpg       optional: otherwise ``val_size`` of train is held out (seeded)
    root/test/<class>/*.jpg      optional: otherwise the validation images are used for the final test

Images are decoded by worker processes with the usual ImageNet-style augmentation (random resized crop and
flip for training; resize and centre crop for evaluation). Under DDP, Lightning gives every rank its own share
through a ``DistributedSampler``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.errors import DataError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "FolderDataModule"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FolderDataModule(ZooDataModule):
    """Classification data from an ``ImageFolder`` tree.

    Args:
        root: folder holding ``train/`` (and optionally ``val/`` and ``test/``), each with one folder per class.
        image_size: side of the square crops fed to the network.
        batch_size: samples per batch per device.
        eval_batch_size: samples per batch for validation and test; defaults to ``batch_size``.
        val_size: when there is no ``val/`` folder, the count (or fraction) of ``train/`` held out, seeded.
        seed: seeds the held-out split.
        num_workers: processes decoding images.
        mean: per-channel normalisation mean (ImageNet's by default).
        std: per-channel normalisation standard deviation (ImageNet's by default).
        grayscale: convert images to one channel (for ``in_channels=1`` networks).
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification", "autoencoder"})

    def __init__(
        self,
        root: str,
        *,
        image_size: int = 224,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_size: int | float = 0.1,
        seed: int = 0,
        num_workers: int = 2,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        grayscale: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        self.image_size, self.batch_size = image_size, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size, self.seed, self.num_workers = val_size, seed, num_workers
        if grayscale:
            mean, std = mean[:1], std[:1]
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.grayscale = grayscale
        self._normalise = v2.Normalize(list(mean), list(std))
        self._classes: list[str] | None = None

    @property
    def classes(self) -> list[str]:
        """Class names: the sub-folders of ``train/``, sorted."""
        if self._classes is None:
            self._classes = self._folder("train").classes
        return self._classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches, for the model summary's output shapes."""
        return (1 if self.grayscale else 3, self.image_size, self.image_size)

    def _transform(self, *, train: bool) -> v2.Compose:
        size = self.image_size
        steps: list[torch.nn.Module] = [v2.Grayscale(1)] if self.grayscale else []
        if train:
            steps += [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            steps += [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
        steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), self._normalise]
        return v2.Compose(steps)

    def _folder(self, split: str, *, train: bool = False) -> ImageFolder:
        path = self.root / split
        if not path.is_dir():
            raise DataError(f"{path} does not exist; FolderDataModule expects root/train/<class>/<image>")
        try:
            return ImageFolder(str(path), transform=self._transform(train=train))
        except (FileNotFoundError, RuntimeError) as error:
            raise DataError(f"{path}: {error}") from error

    def setup(self, stage: str | None = None) -> None:
        """Index the image files and make the train/val/test datasets."""
        if self.datasets:
            return
        train = self._folder("train", train=True)
        if (self.root / "val").is_dir():
            self.datasets["train"], self.datasets["val"] = train, self._folder("val")
        else:
            n_val = round(self.val_size * len(train)) if isinstance(self.val_size, float) else self.val_size
            if not 0 < n_val < len(train):
                raise DataError(
                    f"val_size {self.val_size} of {len(train)} training images leaves no train or no val"
                )
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed)).tolist()
            self.datasets["train"] = Subset(train, order[n_val:])
            self.datasets["val"] = Subset(self._folder("train"), order[:n_val])
        has_test = (self.root / "test").is_dir()
        self.datasets["test"] = self._folder("test") if has_test else self.datasets["val"]
        for split in ("val", "test"):
            classes = getattr(self.datasets[split], "classes", self.classes)
            if classes != self.classes:
                raise DataError(f"{self.root / split} has classes {classes}, but train has {self.classes}")
