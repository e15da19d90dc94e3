"""Your own images, one folder per class: ``zoo fit --recipe folder_lenet5 --data.root PHOTOS``.

Two layouts are read; the first is the simplest to make::

    root/<class>/*.jpg           all the images: ``val_size`` of each class is held out for validation (and the test)

    root/train/<class>/*.jpg     (used whenever root/train exists) the training images
    root/val/<class>/*.jpg       optional: otherwise ``val_size`` of each class of train is held out
    root/test/<class>/*.jpg      optional: otherwise the validation images are used for the final test

The held-out split is stratified and seeded: every class keeps at least one training image and gives at least one
validation image, in proportion to its size. What the network takes follows from the folder, not from typing: the
classes are the sorted folder names, and the channels are 1 when every image is grey, else 3 (``channels`` fixes
them, as pretrained weights need). zoo's command line hands ``num_classes`` and ``channels`` to the task's
``num_classes`` and ``in_channels`` (:class:`ImageFilesDataModule`), so folder recipes leave those out.

Images are decoded by worker processes: random resized crops and flips for training; for evaluation the shorter
side is resized to ``image_size`` x 256/224 and the centre cropped (:func:`evaluation_transform`, ImageNet's
convention), which ``zoo predict`` applies to new images as well (:mod:`zoo.data.photos`). Under DDP, Lightning
gives every rank its own share through a ``DistributedSampler``.

Every file's header is read before training; a file whose header reads but whose pixels do not decode (a truncated
JPEG or PNG) is found only when its batch is made. It stops the run with one line naming the file and where the run
was: the worker process that met it hands its message on in place of the batch (:class:`Undecodable`), and the main
process raises it (:meth:`FolderDataModule.on_before_batch_transfer`), so that it is not buried in a worker's
traceback. Under several processes the ranks vote on every batch (:class:`zoo.distributed.FailureVote`), so that
all of them stop at the batch one of them could not make, instead of waiting for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import Subset, default_collate
from torchvision.transforms import v2

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.readers.images import LabelledImageFiles, find_class_folders, image_channels
from zoo.distributed import FailureVote, on_every_rank
from zoo.errors import DataError

__all__ = [
    "EVAL_RESIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FolderDataModule",
    "ImageFilesDataModule",
    "Undecodable",
    "collate_decodable",
    "evaluation_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: evaluation resizes the shorter side to this multiple of the crop, then crops the centre (ImageNet: 256 -> 224)
EVAL_RESIZE = 256 / 224
#: how three channel statistics become one for grey images: the weights grey conversion gives R, G and B
_GREY_WEIGHTS = (0.299, 0.587, 0.114)


def evaluation_transform(
    image_shape: Sequence[int], mean: Sequence[float] | None, std: Sequence[float] | None
) -> v2.Compose:
    """How an image file becomes a network input outside training: the same for a folder's validation and test
    images and for the new images ``zoo predict`` is given.

    Args:
        image_shape: ``(C, H, W)`` of the network's inputs.
        mean: per-channel mean ``(C,)`` the inputs are normalised with (0..1 units); None for no normalisation.
        std: per-channel standard deviation ``(C,)``; None for no normalisation.

    Returns:
        A transform from a ``uint8`` ``(C, h, w)`` image of any size (:func:`zoo.data.readers.images.read_image`)
        to a float ``(C, H, W)`` one: the shorter side resized to ``min(H, W)`` x :data:`EVAL_RESIZE`, the centre
        cropped, scaled to 0..1 and normalised.
    """
    _, height, width = image_shape
    steps: list[torch.nn.Module] = [
        v2.Resize(round(min(height, width) * EVAL_RESIZE), antialias=True),
        v2.CenterCrop((height, width)),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


class Undecodable:
    """What a sample, and then its batch, becomes when its file does not decode: the reader's message, carried from
    the worker process to the main one.

    Args:
        message: the reader's one line, naming the file.
    """

    def __init__(self, message: str) -> None:
        self.message = message


class _DecodedImageFiles(LabelledImageFiles):
    """:class:`LabelledImageFiles` whose undecodable files become :class:`Undecodable` samples."""

    def __getitem__(self, index: int) -> Any:
        try:
            return super().__getitem__(index)
        except DataError as error:
            return Undecodable(str(error))


def collate_decodable(samples: Sequence[Any]) -> Any:
    """PyTorch's default collation, or the first :class:`Undecodable` among ``samples`` in place of the batch."""
    failed = next((sample for sample in samples if isinstance(sample, Undecodable)), None)
    return failed if failed is not None else default_collate(list(samples))


class ImageFilesDataModule(ZooDataModule):
    """Images in files whose classes and channels the network follows.

    For these DataModules zoo's command line links ``data.num_classes`` to the task's ``num_classes`` and
    ``data.channels`` to its ``in_channels`` (:meth:`zoo.cli.lightning.ZooCLI.parse_arguments`): the user's folder
    decides them, not a number typed into a recipe.
    """

    @property
    def channels(self) -> int:
        """Channels of the images the network is given (1 or 3)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its channels")


class FolderDataModule(ImageFilesDataModule):
    """Classification data from a folder of class folders (see the module's documentation for the layouts).

    Args:
        root: the folder: ``root/<class>/<image>``, or ``root/train/<class>/<image>`` (with optional ``val/`` and
            ``test/`` beside ``train/``).
        image_size: side of the square crops fed to the network (the size the network takes: LeNet-5 28 or 32,
            ImageNet networks 224).
        channels: 1 for grey inputs, 3 for RGB; None: 1 when every image is grey, else 3. Grey images are
            repeated to 3 channels, colour ones converted to grey, as needed.
        batch_size: samples per batch per device.
        eval_batch_size: samples per batch for validation and test; defaults to ``batch_size``.
        val_size: when there is no ``val/`` folder, the fraction (or the count) of the images held out for
            validation, stratified by class, seeded; at least one image of every class.
        seed: seeds the held-out split.
        num_workers: processes decoding images.
        mean: per-channel normalisation mean (ImageNet's by default; three values are weighted into one for grey
            images).
        std: per-channel normalisation standard deviation (ImageNet's by default).
        grayscale: the same as ``channels=1`` (the older spelling).
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification", "autoencoder"})

    def __init__(
        self,
        root: str,
        *,
        image_size: int = 224,
        channels: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_size: int | float = 0.2,
        seed: int = 0,
        num_workers: int = 2,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        grayscale: bool = False,
    ) -> None:
        super().__init__()
        if grayscale and channels == 3:
            raise DataError("grayscale: true and channels: 3 disagree; give one of them")
        channels = 1 if grayscale else channels
        if channels not in (None, 1, 3):
            raise DataError(f"channels must be 1 (grey) or 3 (RGB), not {channels}")
        if image_size < 8 or val_size <= 0:
            raise DataError(
                f"image_size must be at least 8 and val_size above 0, got {image_size} and {val_size}"
            )
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise DataError(f"mean and std need 1 or 3 values each, got {len(mean)} and {len(std)}")
        self.root = Path(root).expanduser()
        self.source = str(self.root)
        self.image_size, self.batch_size = image_size, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size, self.seed, self.num_workers = val_size, seed, num_workers
        self._asked_channels, self._stats = channels, (tuple(mean), tuple(std))
        self._splits: dict[str, tuple[list[str], list[Path], list[int]]] = {}
        self._channels: int | None = None
        self.collate_fn = collate_decodable
        self._vote: FailureVote | None = None

    # ---- what the folder holds --------------------------------------------------------------------------------

    def _read(self) -> dict[str, tuple[list[str], list[Path], list[int]]]:
        """The classes, files and labels of each split folder there is (``all`` for the one-folder layout)."""
        if self._splits:
            return self._splits
        if not (self.root / "train").is_dir():
            self._splits = {"all": find_class_folders(self.root)}
            return self._splits
        splits = {
            s: find_class_folders(self.root / s) for s in ("train", "val", "test") if (self.root / s).is_dir()
        }
        for split, (classes, _, _) in splits.items():
            if classes != splits["train"][0]:
                raise DataError(
                    f"{self.root / split} has classes {classes}, but {self.root / 'train'} has {splits['train'][0]}"
                )
        self._splits = splits
        return splits

    @property
    def classes(self) -> list[str]:
        """Class names: the sorted names of the class folders."""
        return next(iter(self._read().values()))[0]

    @property
    def channels(self) -> int:
        """1 or 3: ``channels`` when given, else 1 when every image is grey (read from the files' headers)."""
        if self._channels is None:
            self._channels = self._asked_channels or image_channels(
                [file for _, files, _ in self._read().values() for file in files]
            )
        return self._channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches."""
        return (self.channels, self.image_size, self.image_size)

    @property
    def mean(self) -> Tensor:  # type: ignore[override]
        """Per-channel normalisation mean ``(C,)``, for the images' channels."""
        return _for_channels(self._stats[0], self.channels)

    @property
    def std(self) -> Tensor:  # type: ignore[override]
        """Per-channel normalisation standard deviation ``(C,)``, for the images' channels."""
        return _for_channels(self._stats[1], self.channels)

    # ---- the datasets -----------------------------------------------------------------------------------------

    def _transform(self, *, train: bool) -> v2.Compose:
        if not train:
            return evaluation_transform(self.image_shape, self.mean.tolist(), self.std.tolist())
        size = self.image_size
        return v2.Compose(
            [
                v2.RandomResizedCrop(size, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean.tolist(), self.std.tolist()),
            ]
        )

    def _dataset(self, split: str, *, train: bool = False) -> LabelledImageFiles:
        _, files, labels = self._read()[split]
        return _DecodedImageFiles(files, labels, self._transform(train=train), channels=self.channels)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Stop at a batch whose file did not decode, naming the file and where the run was.

        Under several processes every rank stops there, with the message of the first rank whose batch it was, except
        while predicting, where the ranks may be given different numbers of batches and cannot vote on each.

        Raises:
            DataError: ``batch`` is :class:`Undecodable`, or another rank's batch is.
        """
        failed = batch.message if isinstance(batch, Undecodable) else None
        trainer = self.trainer
        vote = self._vote if trainer is not None and not trainer.predicting else None
        vote = vote if vote is not None and vote.active else None
        if vote is not None:
            failed = vote.first(failed)
        if failed is None:
            return batch
        where = ""
        if trainer is not None:
            doing = "training" if trainer.training else "testing" if trainer.testing else "validating"
            doing = "predicting" if trainer.predicting else doing
            where = f" (found while {doing}: epoch {trainer.current_epoch}, step {trainer.global_step})"
        error = DataError(f"{failed}{where}; replace the file and resume, or remove it and start a new run")
        raise on_every_rank(error) if vote is not None else error

    def setup(self, stage: str | None = None) -> None:
        """Index the image files and make the train/val/test datasets.

        Raises:
            DataError: in one line, before any training, for a folder that cannot be split or read.
        """
        if self._vote is None or not self._vote.active:  # every rank gets here at once, the process group up
            self._vote = FailureVote()
        if self.datasets:
            return
        splits = self._read()
        whole = "all" if "all" in splits else "train"
        if whole == "train" and "val" in splits:
            self.datasets["train"], self.datasets["val"] = (
                self._dataset("train", train=True),
                self._dataset("val"),
            )
        else:
            train, val = self._held_out(splits[whole][2], self.root / ("" if whole == "all" else "train"))
            self.datasets["train"] = Subset(self._dataset(whole, train=True), train)
            self.datasets["val"] = Subset(self._dataset(whole), val)
        self.datasets["test"] = self._dataset("test") if "test" in splits else self.datasets["val"]

    def teardown(self, stage: str | None = None) -> None:
        """Release the ranks' vote (made again by the next ``setup``)."""
        if self._vote is not None:
            self._vote.close()
            self._vote = None

    def _held_out(self, labels: list[int], folder: Path) -> tuple[list[int], list[int]]:
        """Training and validation indices: ``val_size`` of the images, stratified by class, seeded."""
        classes, total = self.classes, len(labels)
        counts = [labels.count(label) for label in range(len(classes))]
        for name, count in zip(classes, counts, strict=True):
            if count < 2:
                instead = (
                    f", or put validation images in {self.root / 'val'}/<class>/"
                    if folder != self.root
                    else f" (or move the images to {self.root / 'train'}/<class>/ and validation ones to "
                    f"{self.root / 'val'}/<class>/)"
                )
                raise DataError(
                    f"class '{name}' has {count} image in {folder / name}, but holding out a validation split "
                    f"(val_size {self.val_size}) needs at least 2 a class, one to train and one to validate: add "
                    f"images of '{name}'{instead}"
                )
        wanted = round(self.val_size * total) if isinstance(self.val_size, float) else self.val_size
        wanted = max(wanted, len(classes))
        if wanted > total - len(classes):
            raise DataError(
                f"val_size {self.val_size} holds out {wanted} of the {total} images in {folder}, which leaves a class "
                "nothing to train on; lower val_size"
            )
        shares = _stratified(counts, wanted)
        generator = torch.Generator().manual_seed(self.seed)
        val: list[int] = []
        for label, share in enumerate(shares):
            members = [index for index, value in enumerate(labels) if value == label]
            order = torch.randperm(len(members), generator=generator).tolist()
            val += [members[i] for i in order[:share]]
        held = set(val)
        return [i for i in range(total) if i not in held], sorted(val)


def _stratified(counts: list[int], wanted: int) -> list[int]:
    """How many images of each class to hold out: ``wanted`` in all, in proportion to ``counts`` (largest
    remainders first), at least one of each class and at most all but one."""
    total = sum(counts)
    quotas = [wanted * count / total for count in counts]
    shares = [min(max(1, math.floor(q)), count - 1) for q, count in zip(quotas, counts, strict=True)]
    classes = range(len(counts))
    while sum(shares) < wanted:
        grow = max((k for k in classes if shares[k] < counts[k] - 1), key=lambda k: quotas[k] - shares[k])
        shares[grow] += 1
    while sum(shares) > wanted:
        shrink = max((k for k in classes if shares[k] > 1), key=lambda k: shares[k] - quotas[k])
        shares[shrink] -= 1
    return shares


def _for_channels(values: tuple[float, ...], channels: int) -> Tensor:
    """Per-channel statistics for ``channels`` channels: three weighted into one for grey, one repeated for RGB."""
    if len(values) == channels:
        return torch.tensor(values, dtype=torch.float32)
    if channels == 1:
        return torch.tensor(
            [sum(w * v for w, v in zip(_GREY_WEIGHTS, values, strict=True))], dtype=torch.float32
        )
    return torch.tensor(values * channels, dtype=torch.float32)
