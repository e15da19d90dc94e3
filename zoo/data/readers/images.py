"""Image files, read whole: one photo as a ``uint8`` RGB tensor, the photos under a folder, and a Dataset of them.

Any file Pillow reads is an image (:data:`IMAGE_SUFFIXES` when listing a folder). ``skimage:NAME`` names one of
the pictures that ship inside scikit-image (``skimage:astronaut``), so that examples run anywhere, offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from zoo.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "SAMPLES", "SKIMAGE_PREFIX", "ImageFiles", "find_images", "read_image"]

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
