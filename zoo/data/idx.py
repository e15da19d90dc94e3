"""MNIST, Fashion-MNIST and KMNIST, read from their original IDX files (:mod:`zoo.data.readers.idx`).

Files are looked for in the given ``root`` (also in torchvision's ``<root>/FashionMNIST/raw`` layout),
``$ZOO_DATA_DIR/<name>``, and the system dataset folders, where Debian's ``dataset-fashion-mnist`` package puts
Fashion-MNIST (``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from torch import Tensor

from zoo.data.base import resolve
from zoo.data.memory import InMemoryDataModule
from zoo.data.readers.idx import read_idx
from zoo.errors import DataError

__all__ = ["FashionMNISTDataModule", "IDXDataModule", "KMNISTDataModule", "MNISTDataModule"]


class IDXDataModule(InMemoryDataModule):
    """A dataset in the MNIST file layout: ``train-``/``t10k-`` ``images-idx3-ubyte`` and ``labels-idx1-ubyte``.

    See :class:`~zoo.data.memory.InMemoryDataModule` for the arguments.
    """

    required_files: ClassVar[tuple[str, ...]] = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    gzip_ok = True
    #: the torchvision dataset class that knows the download mirrors and checksums
    torchvision_name: ClassVar[str]

    def read_split(self, folder: Path, *, train: bool) -> tuple[Tensor, Tensor]:
        """Read ``train-*`` or ``t10k-*`` images ``(N, 1, 28, 28)`` and labels ``(N,)``."""
        prefix = "train" if train else "t10k"
        images = read_idx(resolve(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(resolve(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{folder}: {prefix} images {tuple(images.shape)} and labels {tuple(labels.shape)} do not pair up"
            )
        return images.unsqueeze(1), labels.long()

    def download_to(self, folder: Path) -> None:
        """Download with torchvision's dataset class (its mirrors and MD5 checks) into ``folder``."""
        import torchvision.datasets

        getattr(torchvision.datasets, self.torchvision_name)(str(folder), train=True, download=True)
        getattr(torchvision.datasets, self.torchvision_name)(str(folder), train=False, download=True)


class MNISTDataModule(IDXDataModule):
    """MNIST handwritten digits (LeCun et al. 1998): 60,000 train and 10,000 test 28x28 grey images."""

    dataset_name = "mnist"
    torchvision_name = "MNIST"
    classes = tuple(str(digit) for digit in range(10))
    layouts = ("", "MNIST/raw", "mnist")
    how_to_get = "Get the four IDX .gz files from https://yann.lecun.com/exdb/mnist/ (or a mirror)."


class FashionMNISTDataModule(IDXDataModule):
    """Fashion-MNIST (Xiao et al. 2017): Zalando article images, same sizes and format as MNIST."""

    dataset_name = "fashion-mnist"
    torchvision_name = "FashionMNIST"
    classes = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    layouts = ("", "FashionMNIST/raw", "fashion-mnist")
    how_to_get = "On Debian or Ubuntu: apt-get install dataset-fashion-mnist."


class KMNISTDataModule(IDXDataModule):
    """Kuzushiji-MNIST (Clanuwat et al. 2018): ten cursive hiragana, same sizes and format as MNIST."""

    dataset_name = "kmnist"
    torchvision_name = "KMNIST"
    classes = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    layouts = ("", "KMNIST/raw", "kmnist")
    how_to_get = "Get the IDX .gz files from https://github.com/rois-codh/kmnist."
