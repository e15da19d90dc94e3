"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), read from the official "python version" pickles.

CIFAR-10: ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``; CIFAR-100: ``cifar-100-python/train``
and ``test``. Each file is a pickled dict with ``data`` (``N x 3072`` bytes, channel-major 32x32 RGB) and
``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).

The pickles are read by :func:`zoo.data.readers.cifar.read_cifar_batch`, which refuses a file that tries to
unpickle code.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from zoo.data.memory import InMemoryDataModule
from zoo.data.readers.cifar import read_cifar_batch

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule"]


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10: 50,000 train and 10,000 test 32x32 colour images in 10 classes.

    See :class:`~zoo.data.memory.InMemoryDataModule` for the arguments; the usual CIFAR augmentation is
    ``pad=4, flip=True``.
    """

    dataset_name = "cifar10"
    classes: tuple[str, ...] = (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    layouts = ("", "cifar-10-batches-py")
    required_files: ClassVar[tuple[str, ...]] = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
    how_to_get = "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it."
    label_key: ClassVar[str] = "labels"
    #: the files of each split
    split_files: ClassVar[dict[bool, tuple[str, ...]]] = {
        True: tuple(f"data_batch_{i}" for i in range(1, 6)),
        False: ("test_batch",),
    }
    torchvision_name: ClassVar[str] = "CIFAR10"

    def read_split(self, folder: Path, *, train: bool) -> tuple[Tensor, Tensor]:
        """Read and concatenate the split's pickles."""
        parts = [read_cifar_batch(folder / name, self.label_key) for name in self.split_files[train]]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def download_to(self, folder: Path) -> None:
        """Download and unpack the archive with torchvision's dataset class (its URL and MD5 check)."""
        import torchvision.datasets

        getattr(torchvision.datasets, self.torchvision_name)(str(folder), train=True, download=True)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 50,000 train and 10,000 test 32x32 colour images in 100 fine classes."""

    dataset_name = "cifar100"
    classes = tuple(
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
        "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
        "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
        "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
        "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
        "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
        "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
        "worm".split()
    )
    layouts = ("", "cifar-100-python")
    required_files = ("train", "test")
    how_to_get = "Get cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it."
    label_key = "fine_labels"
    split_files = {True: ("train",), False: ("test",)}
    torchvision_name = "CIFAR100"
