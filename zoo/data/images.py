"""Unlabelled images for style transfer: a folder of content photos, or scikit-image's sample photos.

Johnson et al. trained on COCO 2014's 80,000 training images, which is simply a folder of JPEG files: point
``root`` at it (or at any folder of photos; sub-folders are searched too). With no ``root``, the DataModule uses
the colour photos that ship inside scikit-image (:data:`SAMPLES`), so a recipe runs anywhere, offline.

Images are decoded by worker processes with torchvision's transforms v2: training images are resized so that
their shorter side is ``size`` and randomly cropped to ``size`` x ``size``; validation and test images are
centre-cropped instead. Batches are ``(images, names)``: float images in 0..1 ``(B, 3, size, size)`` (not
normalised: the loss network normalises, and the transformer's output is an image) and the images' names.

``zoo.predict`` stylises every image of ``predict_root`` (default: the validation images), one at a time at
its own aspect ratio, its shorter side resized to ``predict_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from zoo.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "SAMPLES", "ImageFiles", "ImagesDataModule", "find_images", "read_image"]

#: file suffixes read as images (any case)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: scikit-image's bundled colour photos used as content images when no folder is given
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
#: prefix naming a bundled scikit-image picture instead of a file: ``skimage:hubble_deep_field``
SKIMAGE_PREFIX = "skimage:"
_SKIMAGE_PICTURES = (*SAMPLES, "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo")


def read_image(source: str | Path) -> Tensor:
    """Read an image as ``uint8`` RGB ``(3, H, W)``.

    Args:
        source: a file path (anything Pillow reads), or ``skimage:NAME`` for one of scikit-image's bundled
            pictures (``skimage:astronaut``, ``skimage:hubble_deep_field``, ...).

    Raises:
        DataError: the file is missing or not an image, or the picture name is unknown.
    """
    text = str(source)
    if text.startswith(SKIMAGE_PREFIX):
        name = text.removeprefix(SKIMAGE_PREFIX)
        if name not in _SKIMAGE_PICTURES:
            raise DataError(
                f"unknown scikit-image picture '{name}'; choose from {', '.join(_SKIMAGE_PICTURES)}"
            )
        import skimage.data

        array = np.asarray(getattr(skimage.data, name)())
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1).contiguous()
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as an image: {error}") from None
    return v2.functional.pil_to_tensor(rgb)


def find_images(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (sub-folders included), sorted; raises :class:`DataError` if none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return files


class ImageFiles(Dataset):
    """Images read from files (or ``skimage:NAME`` pictures), transformed, each with its name.

    Args:
        sources: paths or ``skimage:NAME`` strings.
        transform: applied to each ``uint8`` ``(3, H, W)`` image.
    """

    def __init__(self, sources: Sequence[str | Path], transform: Callable[[Tensor], Tensor]) -> None:
        self.sources, self.transform = list(sources), transform

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[Tensor, str]:
        source = str(self.sources[index])
        name = source.removeprefix(SKIMAGE_PREFIX) if source.startswith(SKIMAGE_PREFIX) else Path(source).stem
        return self.transform(read_image(source)), name


class ImagesDataModule(L.LightningDataModule):
    """Content images for training a style transfer network.

    Args:
        root: a folder of images (searched recursively); None uses scikit-image's sample photos (:data:`SAMPLES`).
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
        self.size, self.predict_size = size, predict_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.val_size, self.seed, self.num_workers = val_size, seed, num_workers
        self.datasets: dict[str, ImageFiles] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the training batches, for the model summary's output shapes."""
        return (3, self.size, self.size)

    def sources(self) -> list[str]:
        """The content images: files under ``root``, or ``skimage:NAME`` for the sample photos."""
        if self.root is None:
            return [f"{SKIMAGE_PREFIX}{name}" for name in SAMPLES]
        return [str(path) for path in find_images(self.root)]

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
        self.datasets["train"] = ImageFiles([sources[i] for i in order[n_val:]], self._transform("train"))
        self.datasets["val"] = ImageFiles(
            [sources[i] for i in sorted(order[:n_val])], self._transform("eval")
        )
        predict = (
            self.datasets["val"].sources if self.predict_root is None else find_images(self.predict_root)
        )
        self.datasets["predict"] = ImageFiles(predict, self._transform("predict"))

    def _loader(self, split: str, *, batch_size: int, shuffle: bool = False) -> DataLoader:
        if not self.datasets:
            self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, randomly cropped content images."""
        return self._loader("train", batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The held-out images, centre-cropped, in order."""
        return self._loader("val", batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """The held-out images again: a style transfer network has no separate test set."""
        return self._loader("val", batch_size=self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        """The images to stylise, one a batch (they keep their own sizes)."""
        return self._loader("predict", batch_size=1)
