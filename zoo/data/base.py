"""What every DataModule shares: the interface tasks and callbacks read, the loader factory, finding files on disk.

:class:`ZooDataModule` is the written contract between data and the code that uses it. Tasks and callbacks read
:attr:`~ZooDataModule.kinds`, :attr:`~ZooDataModule.classes`, :attr:`~ZooDataModule.num_classes`,
:attr:`~ZooDataModule.image_shape`, :attr:`~ZooDataModule.mean` and :attr:`~ZooDataModule.std` from it instead
of probing with ``getattr``; every loader comes from one factory, :meth:`~ZooDataModule.dataloader`.

A dataset on disk is looked for in the folder the user names, and there only: a folder named is used or refused,
never replaced by another copy of the data. With no folder named, it is looked for in ``$ZOO_DATA_DIR/<name>``,
then the operating system's dataset folders (:data:`SYSTEM_DATA_DIRS`), then ``~/.cache/zoo/<name>`` where
downloads go (:func:`dataset_search_dirs`, :func:`locate_dataset`). Where it was found is said by
:meth:`ZooDataModule.describe`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zoo.errors import DataError

__all__ = [
    "SYSTEM_DATA_DIRS",
    "Split",
    "TaskKind",
    "ZooDataModule",
    "dataset_search_dirs",
    "default_download_dir",
    "find_dataset",
    "locate_dataset",
    "resolve",
]

#: What a task does with the data: a DataModule lists the kinds it can train in :attr:`ZooDataModule.kinds`.
TaskKind = Literal[
    "classification", "localization", "detection", "segmentation", "style_transfer", "autoencoder"
]
#: The loaders a DataModule gives: ``predict`` is the test split unless the DataModule says otherwise.
Split = Literal["train", "val", "test", "predict"]

#: Where operating-system packages install datasets (Debian's ``dataset-fashion-mnist`` uses the first).
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


class ZooDataModule(L.LightningDataModule):
    """What every zoo DataModule declares for tasks and callbacks to read, and its one loader factory.

    Subclasses declare :attr:`kinds` and :attr:`classes`, and either fill :attr:`datasets` in ``setup`` (the
    loaders are then ``DataLoader`` s built by :meth:`dataloader`) or override :meth:`dataset` or
    :meth:`dataloader` itself (the in-memory sets do, with their on-device loader).

    Attributes:
        batch_size: samples per training batch per device.
        eval_batch_size: samples per validation, test and predict batch per device.
        predict_batch_size: samples per predict batch when it differs from ``eval_batch_size`` (None: the same).
        num_workers: processes decoding samples for the ``DataLoader`` s (0: in the main process).
        collate_fn: how a ``DataLoader`` stacks samples into a batch (None: PyTorch's default).
        datasets: the map-style datasets of the splits, by split name, filled by ``setup``.
    """

    #: the task kinds this data can train; an instance may narrow it (ShapesDataModule keeps its ``mode``)
    kinds: ClassVar[frozenset[TaskKind]]
    #: per-channel normalisation mean ``(C,)`` in 0..1 units; None when the images are not normalised
    mean: Tensor | None = None
    #: per-channel normalisation standard deviation ``(C,)`` in 0..1 units; None when not normalised
    std: Tensor | None = None
    batch_size: int
    eval_batch_size: int
    predict_batch_size: int | None = None
    #: where the data was read from (a folder, or the files), once ``setup`` has found it; None for data made in memory
    source: str | None = None
    num_workers: int = 0
    collate_fn: Callable[[list[Any]], Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset[Any]] = {}

    # ---- what tasks and callbacks read ---------------------------------------------------------------------

    @property
    def classes(self) -> Sequence[str]:
        """Class names in label order.

        Classification: label ``i`` is ``classes[i]``. Localization, detection and segmentation: the object
        classes without the background, label ``i`` (1-based, 0 the background) is ``classes[i - 1]``.
        Empty when the data has no classes (style transfer's content images).
        """
        raise NotImplementedError(f"{type(self).__name__} does not declare its classes")

    @property
    def num_classes(self) -> int:
        """Number of classes a task's head predicts, checked by tasks against their own ``num_classes``.

        ``len(classes)``; DataModules with a background label (detection, segmentation) add it.
        """
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of the batches' images once known (for the model summary), else None."""
        return None

    @property
    def validates(self) -> bool:
        """Whether the data holds out a validation split; False where it is asked for none (``val_size=0``), which a
        fixed-length run does: its best checkpoint is then its last weights."""
        return True

    def split_sizes(self) -> dict[str, int]:
        """Samples in each split ``setup`` made (``train``, ``val``, ``test``), for :meth:`describe`."""
        return {
            split: len(dataset)
            for split, dataset in self.datasets.items()
            if split in ("train", "val", "test") and hasattr(dataset, "__len__")
        }

    def describe(self) -> str:
        """One line saying what the data is, where it was read from and how many samples each split holds, once
        ``setup`` has run: ``FashionMNIST from /usr/share/datasets/fashion-mnist (55000 training, 5000 validation,
        10000 test images)``."""
        name = type(self).__name__.removesuffix("DataModule")
        where = f" from {self.source}" if self.source else ", made in memory"
        words = {"train": "training", "val": "validation", "test": "test"}
        sizes = self.split_sizes()
        counts = ", ".join(f"{sizes[split]} {word}" for split, word in words.items() if split in sizes)
        return f"{name}{where}" + (f" ({counts} images)" if counts else "")

    # ---- the loaders ---------------------------------------------------------------------------------------

    def dataset(self, split: Split, *, train: bool = False) -> Dataset[Any] | None:
        """The map-style dataset behind ``split``, or None when the DataModule has no data for it.

        The default reads :attr:`datasets` (running ``setup`` first when it is empty); ``predict`` is the
        ``predict`` entry when there is one, else ``test``. ``train`` says whether the loader will be the
        training one (the datasets here carry their own transforms, so it changes nothing by default).
        """
        if not self.datasets:
            self.setup("fit")  # used without a Trainer, which would have called it
        if split == "predict" and "predict" not in self.datasets:
            split = "test"
        return self.datasets.get(split)

    def dataloader(self, split: Split, *, train: bool = False) -> Iterable[Any]:
        """The loader of ``split``: the one factory behind every ``*_dataloader`` hook.

        Args:
            split: which samples.
            train: the training loader (shuffled, and augmented where the dataset augments); False gives the
                samples in order, as evaluation, prediction and embedding want them.

        Returns:
            A ``DataLoader`` over :meth:`dataset`; an empty list for a ``val`` split that has no data (which
            skips validation).

        Raises:
            DataError: ``train``, ``test`` or ``predict`` has no data.
        """
        dataset = self.dataset(split, train=train)
        if dataset is None:
            if split == "val":
                return []
            raise DataError(
                f"{type(self).__name__} has no {split} data: give a {split} split"
                + (" (or a validation split, used for testing)" if split in ("test", "predict") else "")
            )
        if train:
            batch_size = self.batch_size
        elif split == "predict" and self.predict_batch_size is not None:
            batch_size = self.predict_batch_size
        else:
            batch_size = self.eval_batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> Iterable[Any]:
        """Shuffled, augmented training batches: ``dataloader("train", train=True)``."""
        return self.dataloader("train", train=True)

    def val_dataloader(self) -> Iterable[Any]:
        """Validation batches in order (an empty list, which skips validation, when there are none)."""
        return self.dataloader("val")

    def test_dataloader(self) -> Iterable[Any]:
        """Test batches in order."""
        return self.dataloader("test")

    def predict_dataloader(self) -> Iterable[Any]:
        """The batches ``python -m zoo.predict`` runs on, in order (the test split unless said otherwise)."""
        return self.dataloader("predict")


# ---- finding a dataset on disk ---------------------------------------------------------------------------


def dataset_search_dirs(root: str | Path | None, name: str, layouts: Sequence[str]) -> list[Path]:
    """The folders in which to look for a dataset, in order: ``root`` alone when it is given; otherwise
    ``$ZOO_DATA_DIR/<name>``, the system folders, and (without ``$ZOO_DATA_DIR``) ``~/.cache/zoo/<name>``, where
    downloads go then.

    Args:
        root: the folder the user named (the only place searched), or None.
        name: the dataset's short name (``fashion-mnist``, ``cifar10``), also its folder under ``$ZOO_DATA_DIR``
            and under the system dataset folders.
        layouts: sub-folders, relative to each of those places, where the files may sit (for example
            ``FashionMNIST/raw``, the layout torchvision downloads into). ``""`` means the folder itself.
    """
    bases: list[Path] = []
    if root is not None:  # a folder named is used or refused, never replaced by another copy of the data
        return [Path(root).expanduser() / layout if layout else Path(root).expanduser() for layout in layouts]
    if env := os.environ.get("ZOO_DATA_DIR"):
        bases.append(Path(env).expanduser() / name)
    bases.extend(system / name for system in SYSTEM_DATA_DIRS)
    if not env:
        bases.append(default_download_dir(None, name))  # where download=True put it
    return [base / layout if layout else base for base in bases for layout in layouts]


def default_download_dir(root: str | Path | None, name: str) -> Path:
    """Where a download goes: ``root``, else ``$ZOO_DATA_DIR/<name>``, else ``~/.cache/zoo/<name>``."""
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("ZOO_DATA_DIR"):
        return Path(env).expanduser() / name
    return Path.home() / ".cache" / "zoo" / name


def find_dataset(
    root: str | Path | None, name: str, layouts: Sequence[str], *, holds: Callable[[Path], bool]
) -> Path | None:
    """The first folder of :func:`dataset_search_dirs` that ``holds`` the dataset, or None."""
    return next((folder for folder in dataset_search_dirs(root, name, layouts) if holds(folder)), None)


def locate_dataset(
    root: str | Path | None,
    name: str,
    layouts: Sequence[str],
    *,
    holds: Callable[[Path], bool],
    download: Callable[[Path], None] | None = None,
    title: str | None = None,
    looked_for: str = "",
    how_to_get: str = "",
) -> Path:
    """The first folder of :func:`dataset_search_dirs` that ``holds`` the dataset, downloading it first if allowed.

    Every reader of the search folders goes through :func:`dataset_search_dirs`, which reads
    :data:`SYSTEM_DATA_DIRS` when called (so that tests can point it elsewhere).

    Args:
        root: the folder the user named, or None.
        name: the dataset's short name (its folder under ``$ZOO_DATA_DIR`` and the system folders).
        layouts: sub-folders of each searched place where the files may sit (``""``: the place itself).
        holds: whether a folder holds every file the dataset needs.
        download: fetches the dataset into the folder it is given; None when downloading is not asked for.
        title: the dataset's name in messages (default ``name``).
        looked_for: what was looked for, named in the message when nothing is found (default: nothing).
        how_to_get: the end of that message: how to get the data by hand.

    Raises:
        DataError: in one line, when ``root`` is a file, or does not exist and nothing is to be downloaded into it,
            when the download fails, or when the dataset is found nowhere.
    """
    title = title or name
    if root is not None:
        named = Path(root).expanduser()
        if named.exists() and not named.is_dir():
            raise DataError(
                f"{title}: the data root {named} is a file; name the folder holding the dataset's files"
            )
        if not named.exists() and download is None:
            raise DataError(
                f"{title}: the data root {named} does not exist; name the folder holding the dataset's files, "
                "or leave the root out to search the usual places"
            )
    folder = find_dataset(root, name, layouts, holds=holds)
    if folder is None and download is not None:
        target = default_download_dir(root, name)
        try:
            download(target)
        except Exception as error:  # network errors come in many types; all mean the same to the user
            reason = " ".join(str(error).split())  # torchvision lists every mirror it tried, line by line
            raise DataError(f"could not download {title} into {target}: {reason}") from error
        folder = find_dataset(root, name, layouts, holds=holds)
    if folder is None:
        searched = ", ".join(str(p) for p in dataset_search_dirs(root, name, ("",)))
        looked = f"looked for {looked_for} in {searched}" if looked_for else f"looked in {searched}"
        subs = [repr(layout) for layout in layouts if layout]
        if subs:
            looked += ", including sub-folders " + " and ".join(
                [", ".join(subs[:-1]), subs[-1]] if subs[:-1] else subs
            )
        hint = "" if download is not None else "; pass --data.download true to fetch it"
        if root is not None:
            looked += ", the only place searched when a root is given"
        raise DataError(f"{title} not found ({looked}){hint}{how_to_get}")
    return folder


def resolve(folder: Path, file: str) -> Path:
    """The path of ``file`` in ``folder``, plain or gzipped (plain preferred)."""
    plain = folder / file
    return plain if plain.is_file() else folder / f"{file}.gz"
