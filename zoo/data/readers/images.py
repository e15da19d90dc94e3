"""Image files, read whole: one photo as a ``uint8`` tensor, the photos under a folder, a folder of class folders,
and Datasets of them.

Any file Pillow reads is an image (:data:`IMAGE_SUFFIXES` when listing a folder). ``skimage:NAME`` names one of
the pictures that ship inside scikit-image (``skimage:astronaut``), so that examples run anywhere, offline.
Every image becomes RGB (palette, RGBA and grey files alike) or, when one channel is asked for, grey, by Pillow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from zoo.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "SAMPLES",
    "SKIMAGE_PREFIX",
    "ImageFiles",
    "LabelledImageFiles",
    "NumberedImageFiles",
    "find_class_folders",
    "find_images",
    "image_channels",
    "read_image",
]

#: file suffixes read as images (any case)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: scikit-image's bundled colour photos used as content images when no folder is given
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
#: prefix naming a bundled scikit-image picture instead of a file: ``skimage:hubble_deep_field``
SKIMAGE_PREFIX = "skimage:"
_SKIMAGE_PICTURES = (
    *SAMPLES,
    # colour
    *("cat", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo"),
    # grey
    *("camera", "coins", "moon", "page", "text", "clock", "checkerboard", "brick", "grass", "gravel", "cell"),
)
#: Pillow modes of one-channel images (black and white, grey, grey with alpha, 16- and 32-bit grey)
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
#: Pillow modes of more than 8 bits a pixel, which Pillow's conversions clip to 255 instead of scaling
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _eight_bits(image: Image.Image, path: Path) -> Image.Image:
    """A 16-bit grey image (or a 32-bit integer one holding 16-bit values) scaled to 8 bits, as other readers do
    (the top 8 bits); any other image as it is.

    Raises:
        DataError: a floating-point image, or integer values beyond 16 bits: their range is not known.
    """
    if image.mode not in _WIDE_MODES:
        return image
    if image.mode == "F":
        raise DataError(f"{path} holds floating-point pixels (Pillow mode F), whose range is not known; save it "
                        "with 8 or 16 bits a pixel")  # fmt: skip
    values = np.asarray(image)
    if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFF):
        raise DataError(f"{path} holds 32-bit pixel values (Pillow mode {image.mode}) beyond 16 bits; save it with "
                        "8 or 16 bits a pixel")  # fmt: skip
    return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), mode="L")


def read_image(source: str | Path, *, channels: int = 3) -> Tensor:
    """Read an image as ``uint8`` ``(channels, H, W)``: RGB, or grey when ``channels`` is 1.

    Args:
        source: a file path (anything Pillow reads), or ``skimage:NAME`` for one of scikit-image's bundled
            pictures (``skimage:astronaut``, ``skimage:hubble_deep_field``, ...).
        channels: 3 for RGB (grey pictures are repeated, alpha is dropped), 1 for grey (Pillow's ``L``).

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
        picture = Image.fromarray(array if array.ndim == 2 else np.ascontiguousarray(array[..., :3]))
        return v2.functional.pil_to_tensor(picture.convert("L" if channels == 1 else "RGB"))
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            converted = _eight_bits(image, path).convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path} cannot be read as an image: {error}") from None
    return v2.functional.pil_to_tensor(converted)


def find_images(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (sub-folders included), sorted; raises :class:`DataError` if none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"image folder {root} {what}; name a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return files


def find_class_folders(folder: str | Path) -> tuple[list[str], list[Path], list[int]]:
    """The classes of a folder holding one sub-folder of images per class, and its images with their labels.

    Sub-folders whose names start with a dot (``.ipynb_checkpoints``) are not classes; the images of a class may sit
    in sub-folders of its folder.

    Returns:
        ``(classes, files, labels)``: the class names sorted, the image files sorted by class then path, and the
        label of each file (its class's index in ``classes``).

    Raises:
        DataError: ``folder`` is missing, holds no class folders, or a class folder holds no images.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"{root} {what}; expected one folder of images per class, {root}/<class>/<image>")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} holds no class folders; put the images of each class in {root}/<class>/")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not found:
            raise DataError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some or remove it"
            )
        files += found
        labels += [label] * len(found)
    return classes, files, labels


def image_channels(files: Sequence[Path]) -> int:
    """1 when every file is a grey image, else 3; reads each file's header only.

    Raises:
        DataError: naming the first file Pillow cannot identify as an image, or whose pixels are floating-point
            numbers (of no known range).
    """
    grey = True
    for path in files:
        try:
            with Image.open(path) as image:
                grey = grey and image.mode in _GREY_MODES
                mode = image.mode
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"{path} cannot be read as an image ({error}); remove or replace it") from None
        if mode == "F":
            raise DataError(f"{path} holds floating-point pixels (Pillow mode F), whose range is not known; save "
                            "it with 8 or 16 bits a pixel, or remove it")  # fmt: skip
    return 1 if grey else 3


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


class LabelledImageFiles(Dataset):
    """Labelled image files, read with :func:`read_image` and transformed: ``(image, label)`` samples.

    Args:
        files: the image files.
        labels: the label of each file.
        transform: applied to each ``uint8`` ``(channels, H, W)`` image.
        channels: 3 to read the images as RGB, 1 as grey.
    """

    def __init__(
        self,
        files: Sequence[Path],
        labels: Sequence[int],
        transform: Callable[[Tensor], Tensor],
        *,
        channels: int = 3,
    ) -> None:
        self.files, self.labels, self.transform, self.channels = (
            list(files),
            list(labels),
            transform,
            channels,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(read_image(self.files[index], channels=self.channels)), self.labels[index]


class NumberedImageFiles(Dataset):
    """Unlabelled image files, each with its number in ``files``: ``(image, number)`` samples, or None for a file
    that does not decode (:func:`zoo.data.photos.collate_decoded` leaves those out of a batch).

    Args:
        files: the image files.
        transform: applied to each ``uint8`` ``(channels, H, W)`` image.
        channels: 3 to read the images as RGB, 1 as grey.
    """

    def __init__(
        self, files: Sequence[Path], transform: Callable[[Tensor], Tensor], *, channels: int = 3
    ) -> None:
        self.files, self.transform, self.channels = list(files), transform, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | None:
        try:
            image = read_image(self.files[index], channels=self.channels)
        except DataError:
            return None
        return self.transform(image), index
