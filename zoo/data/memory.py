"""Small labelled image sets held whole in memory: the in-memory loader and the DataModule built on it.

One concern over 400 lines: the device-side augmentation, the DDP sharding and the mid-epoch resumable
loader exist only for the DataModule that holds its set in memory, and are read together with it.

Small datasets (the MNIST family, CIFAR) are held whole as one ``uint8`` tensor, moved to the training device
once, and every batch is sliced, augmented (pad + random crop, horizontal flip) and normalised there. This is
the trick behind the fast CIFAR-10 trainers (airbench, hlb-CIFAR10): no worker processes, no per-image Python.

Under DDP every rank draws the same seeded permutation of the epoch and takes its own disjoint share of it, so
the ranks together see each training image once per epoch. The loader reports its position in the epoch to
Lightning (``state_dict``), so a run resumed from a mid-epoch checkpoint continues with exactly the batches
the interrupted run would have seen next.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.data.base import Split, TaskKind, ZooDataModule, find_dataset, locate_dataset
from zoo.errors import DataError

__all__ = ["InMemoryDataModule", "InMemoryLoader", "ShardSampler", "channel_stats", "crop_and_flip"]

Batch = tuple[Tensor, Tensor]


def channel_stats(images: Tensor, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of ``uint8`` images ``(N, C, H, W)``, in units of 0..1."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].to(torch.float64)
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return (mean / 255).float(), (std / 255).float()


def crop_and_flip(images: Tensor, *, pad: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random translation by up to ``pad`` pixels (zero padding, then a crop back to size) and random h-flip.

    Works on a whole batch ``(B, C, H, W)`` at once, on whatever device the batch lives on: every output pixel is
    one ``gather`` from the padded batch, the crop's offset and the flip folded into a single index, which is
    about three times faster on a CPU than indexing rows and columns separately.
    """
    if pad <= 0 and not flip:
        return images
    batch, channels, height, width = images.shape
    device = images.device
    padded_width = width + 2 * pad
    if pad > 0:
        images = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (batch,), device=device, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (batch,), device=device, generator=generator)
    else:
        dy = dx = torch.zeros(batch, dtype=torch.long, device=device)
    cols = torch.arange(width, device=device).expand(batch, width)
    if flip:
        mirrored = torch.rand(batch, device=device, generator=generator) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)  # a flipped crop reads its window backwards
    rows = torch.arange(height, device=device)
    index = (rows[None, :, None] + dy[:, None, None]) * padded_width + cols[:, None, :] + dx[:, None, None]
    flat = index.view(batch, 1, height * width).expand(batch, channels, height * width)
    return images.reshape(batch, channels, -1).gather(2, flat).view(batch, channels, height, width)


class ShardSampler:
    """The indices one rank sees in one epoch.

    Training: a permutation seeded by ``(seed, epoch)``, identical on all ranks, cut to a multiple of the world
    size and dealt out so that rank ``r`` takes positions ``r, r + world, ...``; every rank gets the same count,
    which DDP needs. Evaluation: the indices in order, dealt out the same way without cutting (torchmetrics
    gathers the metric states, so uneven shares are exact).

    Lightning calls :meth:`set_epoch` at the start of every epoch, as it does for ``DistributedSampler``.
    """

    def __init__(
        self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation :meth:`indices` returns."""
        self.epoch = epoch

    def indices(self) -> Tensor:
        """This rank's share of the current epoch, as a 1-D ``int64`` tensor on the CPU."""
        if not self.shuffle:
            # a slice, not arange(rank, size, world): a rank beyond a tiny set gets no indices, not an error
            return torch.arange(self.size)[self.rank :: self.world_size]
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        usable = self.size - self.size % self.world_size
        return order[self.rank : usable : self.world_size]

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.size, self.world_size))
        return self.size // self.world_size


class InMemoryLoader:
    """Batches ``(images, labels)`` cut from tensors that already live on the device.

    Args:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        labels: ``int64`` tensor ``(N,)`` on the same device.
        batch_size: samples per batch on this rank.
        sampler: which indices this rank takes, epoch by epoch.
        mean: per-channel mean in 0..1 units, shape ``(C,)``.
        std: per-channel standard deviation in 0..1 units, shape ``(C,)``.
        pad: random translation of up to this many pixels; 0 disables it.
        flip: random horizontal flips.
        seed: seeds the augmentation; each batch's randomness depends only on (seed, epoch, rank, batch).
        drop_last: drop the final, smaller batch of the epoch.

    Yields ``float32`` images ``(B, C, H, W)``, normalised, and ``int64`` labels ``(B,)``.
    """

    #: Lightning inspects ``sampler`` and ``batch_sampler`` as on a ``DataLoader`` (it calls ``set_epoch``)
    batch_sampler = None

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        sampler: ShardSampler,
        mean: Tensor,
        std: Tensor,
        pad: int = 0,
        flip: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.sampler = batch_size, sampler
        self.pad, self.flip, self.seed, self.drop_last = pad, flip, seed, drop_last
        device = images.device
        # x / 255 normalised = x * scale + shift, with x the uint8 value
        self._scale = (1.0 / (255.0 * std)).to(device).view(1, -1, 1, 1)
        self._shift = (-mean / std).to(device).view(1, -1, 1, 1)
        self._position = (0, 0)  # (epoch, batches already yielded in it)
        self._resume: tuple[int, int] | None = None

    def __len__(self) -> int:
        samples = len(self.sampler)
        return samples // self.batch_size if self.drop_last else math.ceil(samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self._batches()

    def _batches(self) -> Iterator[Batch]:
        # A generator: nothing runs until the first batch is asked for, after Lightning's set_epoch.
        epoch = self.sampler.epoch
        start = 0
        if self._resume is not None:
            if self._resume[0] == epoch:
                start = self._resume[1]
            self._resume = None
        order = self.sampler.indices().to(self.images.device)
        augment = self.pad > 0 or self.flip
        generator = torch.Generator(device=self.images.device) if augment else None
        for index in range(start, len(self)):
            chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
            images = self.images.index_select(0, chosen)
            if generator is not None:
                generator.manual_seed(hash((self.seed, epoch, self.sampler.rank, index)) & 0x7FFF_FFFF_FFFF)
                images = crop_and_flip(images, pad=self.pad, flip=self.flip, generator=generator)
            self._position = (epoch, index + 1)
            yield images.float().mul_(self._scale).add_(self._shift), self.labels.index_select(0, chosen)

    def state_dict(self) -> dict[str, int]:
        """Where in which epoch the loader stands, saved by Lightning in every checkpoint."""
        return {"epoch": self._position[0], "batches": self._position[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue, in the same epoch, after the batches already seen."""
        self._resume = (int(state["epoch"]), int(state["batches"]))


class InMemoryDataModule(ZooDataModule):
    """A labelled image set small enough to keep whole in memory, with a seeded train/val split.

    Subclasses say where the files are (:attr:`dataset_name`, :attr:`layouts`, :attr:`required_files`) and how
    to read them (:meth:`read_split`) and download them (:meth:`download_to`). ``mean`` and ``std`` are the
    training part's per-channel statistics once ``setup`` has read the data (None before).

    Args:
        root: folder holding the dataset's files; when None, ``$ZOO_DATA_DIR/<name>`` and the system dataset
            folders are searched.
        batch_size: samples per batch per device (the global batch is ``batch_size * world_size``).
        eval_batch_size: samples per batch for validation and test; defaults to ``batch_size``.
        val_size: images held out of the training split for validation, as a count (``5000``) or a
            fraction (``0.1``); chosen by a permutation seeded with ``seed``. 0: none, and ``zoo fit`` keeps
            the last weights as its best checkpoint.
        seed: seeds the split, the epoch permutations and the augmentation.
        pad: training augmentation: random translation by up to ``pad`` pixels (0 disables it).
        flip: training augmentation: random horizontal flips.
        download: download the files when they are found nowhere (needs a network).
        drop_last: drop the last, smaller training batch of every epoch.
        keep_classes: keep only these classes (labels of the dataset), relabelled 0, 1, ... in this order;
            ``classes`` and ``num_classes`` then describe the subset. None keeps them all.
        train_per_class: keep only this many training images of each class (a seeded draw, after the
            validation split), to learn from few labels. None keeps them all.
    """

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification", "autoencoder"})
    #: short name: the folder under ``$ZOO_DATA_DIR`` and the system dataset folders
    dataset_name: ClassVar[str]
    #: names of the classes, in label order (an instance keeping a subset has its own)
    classes: tuple[str, ...]
    #: sub-folders of each searched folder where the files may sit ("" is the folder itself)
    layouts: ClassVar[tuple[str, ...]] = ("",)
    #: files that must all be present in a folder for it to hold the dataset
    required_files: ClassVar[tuple[str, ...]]
    #: whether each required file may also be present gzipped (``name.gz``)
    gzip_ok: ClassVar[bool] = False
    #: how to get the data by hand, for the message shown when it is missing
    how_to_get: ClassVar[str] = ""

    def __init__(
        self,
        root: str | None = None,
        *,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int | float = 5000,
        seed: int = 0,
        pad: int = 0,
        flip: bool = False,
        download: bool = False,
        drop_last: bool = False,
        keep_classes: list[int] | None = None,
        train_per_class: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if keep_classes is not None:
            unknown = [c for c in keep_classes if not 0 <= c < len(self.classes)]
            if unknown or not keep_classes or len(set(keep_classes)) != len(keep_classes):
                raise DataError(
                    f"keep_classes must be distinct labels from 0 to {len(self.classes) - 1}, got {keep_classes}"
                )
            self.classes = tuple(self.classes[c] for c in keep_classes)
        if train_per_class is not None and train_per_class < 1:
            raise DataError(f"train_per_class must be at least 1, got {train_per_class}")
        self.keep_classes, self.train_per_class = keep_classes, train_per_class
        if val_size < 0:
            raise DataError(f"val_size must be 0 or more, got {val_size}")
        self.root, self.download = root, download
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size, self.seed = val_size, seed
        self.pad, self.flip, self.drop_last = pad, flip, drop_last
        self.splits: dict[str, Batch] = {}
        self._on_device: dict[str, Batch] = {}

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of the images once the data is read, for the model summary's output shapes."""
        if not self.splits:
            return None
        channels, height, width = self.splits["train"][0].shape[1:]
        return channels, height, width

    @property
    def validates(self) -> bool:
        """False with ``val_size=0``: every training image is trained on, and nothing is held out to validate."""
        return self.val_size != 0

    def split_sizes(self) -> dict[str, int]:
        """Images in the training, validation and test splits ``setup`` made."""
        return {split: len(labels) for split, (_, labels) in self.splits.items()}

    @abstractmethod
    def read_split(self, folder: Path, *, train: bool) -> Batch:
        """Read the official training or test split from ``folder``.

        Returns:
            ``uint8`` images ``(N, C, H, W)`` and ``int64`` labels ``(N,)``, on the CPU.

        Raises:
            DataError: when a file is truncated, corrupt or not in the expected format.
        """

    @abstractmethod
    def download_to(self, folder: Path) -> None:
        """Download the dataset's files into ``folder`` (a sub-folder of it is fine if listed in layouts)."""

    # ---- locating the files ------------------------------------------------------------------------------

    def holds(self, folder: Path) -> bool:
        """Whether ``folder`` holds every required file (or its ``.gz`` when allowed)."""
        gz = self.gzip_ok
        return all(
            (folder / f).is_file() or (gz and (folder / f"{f}.gz").is_file()) for f in self.required_files
        )

    def find_folder(self) -> Path | None:
        """The first searched folder that holds the dataset, or None."""
        return find_dataset(self.root, self.dataset_name, self.layouts, holds=self.holds)

    def locate(self, *, download: bool) -> Path:
        """Find the dataset, downloading it first when allowed; raise a one-line :class:`DataError` if absent."""
        return locate_dataset(
            self.root,
            self.dataset_name,
            self.layouts,
            holds=self.holds,
            download=self.download_to if download else None,
            how_to_get=f". {self.how_to_get}".rstrip(),
        )

    # ---- LightningDataModule hooks -----------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Find the files, downloading them on one process per node when ``download`` is set."""
        self.locate(download=self.download)

    def setup(self, stage: str | None = None) -> None:
        """Read the files once; split train into train/val; compute the normalisation on the train part."""
        if self.splits:
            return
        folder = self.locate(download=False)
        self.source = str(folder)
        images, labels = self._subset(*self._checked(*self.read_split(folder, train=True), split="train"))
        n_val = round(self.val_size * len(images)) if isinstance(self.val_size, float) else self.val_size
        if n_val >= len(images):
            raise DataError(f"val_size {self.val_size} leaves no training images out of {len(images)}")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        train, val = order[n_val:], order[:n_val]
        if self.train_per_class is not None:
            train = self._few_per_class(train, labels[train])
        self.splits["train"] = images[train], labels[train]
        self.splits["val"] = images[val], labels[val]
        self.splits["test"] = self._subset(
            *self._checked(*self.read_split(folder, train=False), split="test")
        )
        self.mean, self.std = channel_stats(self.splits["train"][0])

    def _subset(self, images: Tensor, labels: Tensor) -> Batch:
        """The images of the kept classes, relabelled in ``keep_classes`` order."""
        if self.keep_classes is None:
            return images, labels
        relabel = torch.full((int(labels.max()) + 1 if len(labels) else 1,), -1, dtype=torch.long)
        kept = [c for c in self.keep_classes if c < len(relabel)]
        relabel[kept] = torch.tensor([self.keep_classes.index(c) for c in kept], dtype=torch.long)
        new = relabel[labels]
        keep = new >= 0
        return images[keep], new[keep]

    def _few_per_class(self, indices: Tensor, labels: Tensor) -> Tensor:
        """``train_per_class`` of ``indices`` per class, the first ones of a permutation seeded apart from the split."""
        assert self.train_per_class is not None
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(self.seed + 1))
        chosen = [order[labels[order] == c][: self.train_per_class] for c in range(self.num_classes)]
        short = [self.classes[c] for c, idx in enumerate(chosen) if len(idx) < self.train_per_class]
        if short:
            raise DataError(f"fewer than {self.train_per_class} training images of class {', '.join(short)}")
        return indices[torch.cat(chosen).sort().values]

    def _checked(self, images: Tensor, labels: Tensor, *, split: str) -> Batch:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise DataError(
                f"{self.dataset_name} {split} split: expected uint8 images (N, C, H, W) and N labels, "
                f"got {images.dtype} {tuple(images.shape)} and {len(labels)} labels"
            )
        every = len(type(self).classes)  # the whole dataset's classes, before keep_classes
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= every):
            raise DataError(
                f"{self.dataset_name} {split} split has labels from {int(labels.min())} to {int(labels.max())}, "
                f"but the dataset has {every} classes"
            )
        return images, labels.long()

    def dataloader(self, split: Split, *, train: bool = False) -> InMemoryLoader | list[Any]:
        """Batches of ``split`` cut from the tensors on the training device; this rank's share of every epoch.

        ``train`` shuffles, augments (``pad``, ``flip``) and drops the last batch when ``drop_last``; otherwise
        the batches come in order, unaugmented. ``predict`` is the test split; a ``val`` split of no images
        (``val_size=0``) gives an empty list, which skips validation.
        """
        if not self.splits:
            self.setup()
        if split == "predict":
            split = "test"
        if split == "val" and not len(self.splits["val"][1]):
            return []
        trainer = self.trainer  # None when used without a Trainer: one process on the CPU
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if split not in self._on_device or self._on_device[split][0].device != device:
            images, labels = self.splits[split]
            self._on_device[split] = images.to(device), labels.to(device)
        images, labels = self._on_device[split]
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = ShardSampler(len(images), shuffle=train, seed=self.seed, rank=rank, world_size=world)
        assert self.mean is not None and self.std is not None  # set by setup
        return InMemoryLoader(
            images,
            labels,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            mean=self.mean,
            std=self.std,
            pad=self.pad if train else 0,
            flip=self.flip if train else False,
            seed=self.seed,
            drop_last=self.drop_last if train else False,
        )
