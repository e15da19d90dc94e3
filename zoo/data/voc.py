"""PASCAL VOC 2007 and 2012: detection from the XML annotations, segmentation from the palette PNGs.

Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010. The layout, as unpacked from
the official tar files (and as torchvision's ``VOCDetection`` downloads it)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/Annotations/<id>.xml              detection
    VOCdevkit/VOC2012/ImageSets/Main/<split>.txt         detection splits: train, val, trainval (2007: test)
    VOCdevkit/VOC2012/SegmentationClass/<id>.png         segmentation, palette PNG of class indices
    VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt segmentation splits

Boxes: VOC counts pixels from 1 and includes both ends, so ``xmin..xmax`` becomes ``XYXY``
``(xmin - 1, ymin - 1, xmax, ymax)`` in the 0-based continuous coordinates torchvision uses. Objects marked
``difficult`` are dropped unless ``keep_difficult``. The XML is parsed with :mod:`xml.etree.ElementTree`, which
never fetches external entities.

Segmentation masks are palette PNGs whose pixel values are the class indices: 0 background, 1..20 the classes
in :data:`VOC_CLASSES` order, 255 the object borders, which count for nothing (:data:`~zoo.data.targets.IGNORE_INDEX`).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, tv_tensors
from torchvision.transforms import v2

from zoo.data.base import dataset_search_dirs, default_download_dir
from zoo.data.coco import DetectionDataModule, DetectionRecord, filter_boxes, read_image
from zoo.data.targets import IGNORE_INDEX
from zoo.errors import DataError

__all__ = ["VOC_CLASSES", "VOCDetectionDataModule", "VOCSegmentationDataModule", "collate_padded"]

log = logging.getLogger(__name__)

#: The 20 VOC classes; label ``i`` (1-based, 0 is the background) is ``VOC_CLASSES[i - 1]``.
VOC_CLASSES: tuple[str, ...] = tuple(
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
    "pottedplant sheep sofa train tvmonitor".split()
)
#: the archive each year's train/val images come in, for the "how to get it" message
_ARCHIVES = {
    "2007": "VOCtrainval_06-Nov-2007.tar (and VOCtest_06-Nov-2007.tar)",
    "2012": "VOCtrainval_11-May-2012.tar",
}


def _voc_folder(
    root: str | None, year: str, lists: str, splits: list[str], data: str, *, download: bool
) -> Path:
    """The ``VOC<year>`` folder holding ``ImageSets/<lists>/<split>.txt`` for every split, ``JPEGImages`` and
    ``data``; downloaded first when allowed and absent; otherwise a one-line DataError."""
    if year not in _ARCHIVES:
        raise DataError(f"VOC year must be one of {', '.join(_ARCHIVES)}, got {year!r}")
    layouts = (f"VOCdevkit/VOC{year}", f"VOC{year}", "")

    def find() -> Path | None:
        for folder in dataset_search_dirs(root, "voc", layouts):
            needed = [folder / "ImageSets" / lists / f"{s}.txt" for s in splits]
            if (
                all(p.is_file() for p in needed)
                and (folder / "JPEGImages").is_dir()
                and (folder / data).is_dir()
            ):
                return folder
        return None

    folder = find()
    if folder is None and download:
        target = default_download_dir(root, "voc")
        make = datasets.VOCSegmentation if lists == "Segmentation" else datasets.VOCDetection
        try:
            for split in dict.fromkeys(splits):
                make(str(target), year=year, image_set=split, download=True)
        except Exception as error:  # network errors come in many types; all mean the same to the user
            reason = " ".join(str(error).split())
            raise DataError(f"could not download VOC{year} into {target}: {reason}") from error
        folder = find()
    if folder is None:
        searched = ", ".join(str(p) for p in dataset_search_dirs(root, "voc", ("",)))
        wanted = ", ".join(f"ImageSets/{lists}/{s}.txt" for s in dict.fromkeys(splits))
        hint = "" if download else "; pass --data.download true to fetch it"
        raise DataError(
            f"VOC{year} not found (looked for JPEGImages, {data} and {wanted} in {searched}, including "
            f"sub-folders 'VOCdevkit/VOC{year}' and 'VOC{year}'){hint}, or unpack {_ARCHIVES[year]} "
            "from http://host.robots.ox.ac.uk/pascal/VOC/ there"
        )
    return folder


def _image_ids(folder: Path, lists: str, split: str) -> list[str]:
    path = folder / "ImageSets" / lists / f"{split}.txt"
    # the Main/<class>_<split>.txt lists carry a second column; the plain lists hold one id a line
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_voc_xml(path: Path, *, keep_difficult: bool) -> tuple[int, int, list[list[float]], list[int]]:
    """Read one VOC annotation file.

    Returns:
        The image's height and width, the ``XYXY`` boxes (0-based) and their 1-based labels.

    Raises:
        DataError: the file is missing, is not XML, lacks a field, or names a class outside :data:`VOC_CLASSES`.
    """
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except ET.ParseError as error:
        raise DataError(f"{path}: not valid XML ({error})") from error

    def number(node: ET.Element, tag: str) -> float:
        text = node.findtext(tag)
        try:
            return float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DataError(f"{path}: <{tag}> is missing or not a number ({text!r})") from None

    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: no <size> element")
    height, width = int(number(size, "height")), int(number(size, "width"))
    boxes, labels = [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise DataError(f"{path}: unknown class {name!r}; VOC has {', '.join(VOC_CLASSES)}")
        if not keep_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: object {name!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        labels.append(VOC_CLASSES.index(name) + 1)
    return height, width, boxes, labels


class VOCDetectionDataModule(DetectionDataModule):
    """PASCAL VOC detection: ``(image, {"boxes", "labels"})`` samples from the XML annotations.

    Args:
        root: a folder holding ``VOCdevkit/VOC<year>`` (or ``VOC<year>``, or the year's folder itself); when None,
            ``$ZOO_DATA_DIR/voc``, the system dataset folders and ``~/.cache/zoo/voc`` are searched.
        year: ``"2007"`` or ``"2012"``.
        train_split: the ``ImageSets/Main`` list to train on (``train``, ``trainval``).
        val_split: the list to validate on; None for no validation.
        test_split: the list to test on (``test`` exists for 2007 only); None tests on ``val_split``.
        keep_difficult: keep the objects marked ``difficult`` (dropped by default, as VOC's own evaluation
            ignores them).
        download: download the year's archives through torchvision when they are found nowhere.
        batch_size: images per batch per device.
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        num_workers: processes decoding images.
        size: the shorter side after resizing; None keeps the images' own size.
        max_size: the longer side is at most this; None for no limit.
        scale_range: training scale jitter: ``size`` times a random factor in this range.
        flip: random horizontal flips in training.
    """

    classes = list(VOC_CLASSES)

    def __init__(
        self,
        root: str | None = None,
        *,
        year: str = "2012",
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = None,
        keep_difficult: bool = False,
        download: bool = False,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        size: int | None = 512,
        max_size: int | None = 1024,
        scale_range: tuple[float, float] = (1.0, 1.0),
        flip: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            size=size,
            max_size=max_size,
            scale_range=scale_range,
            flip=flip,
        )
        self.root, self.year, self.download = root, str(year), download
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.keep_difficult = keep_difficult

    def _folder(self, *, download: bool) -> Path:
        wanted = [s for s in self.splits.values() if s is not None]
        return _voc_folder(self.root, self.year, "Main", wanted, "Annotations", download=download)

    def prepare_data(self) -> None:
        """Find the files, downloading them on one process per node when ``download`` is set."""
        self._folder(download=self.download)

    def read_records(self, split: str) -> list[DetectionRecord] | None:
        """Parse the XML of every image in the split's ``ImageSets/Main`` list."""
        name = self.splits[split]
        if name is None:
            return None
        folder = self._folder(download=False)
        records, dropped = [], 0
        for image_id in _image_ids(folder, "Main", name):
            xml = folder / "Annotations" / f"{image_id}.xml"
            height, width, boxes, labels = parse_voc_xml(xml, keep_difficult=self.keep_difficult)
            image = folder / "JPEGImages" / f"{image_id}.jpg"
            if not image.is_file():
                raise DataError(f"{image}: image listed in ImageSets/Main/{name}.txt does not exist")
            clipped, keep = filter_boxes(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                height=height,
                width=width,
                where=str(xml),
            )
            dropped += int((~keep).sum())
            label_tensor = torch.tensor(labels, dtype=torch.int64)
            records.append(DetectionRecord(image, height, width, clipped[keep], label_tensor[keep]))
        self.dropped[split] = dropped
        if dropped:
            log.warning(
                "VOC%s %s: dropped %d degenerate boxes (under 1 pixel after clipping)",
                self.year,
                name,
                dropped,
            )
        return records


class _SegmentationSamples(Dataset[tuple[tv_tensors.Image, tv_tensors.Mask]]):
    """``(image, mask)`` from pairs of JPEG and palette PNG, through a transform: the mask is ``int64`` ``(H, W)``
    class indices, 255 ignored (the same sample as ``ShapesDataModule(mode="segmentation")`` gives)."""

    def __init__(self, pairs: list[tuple[Path, Path]], transform: v2.Transform) -> None:
        self.pairs, self.transform = pairs, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image_path, mask_path = self.pairs[index]
        image = tv_tensors.Image(read_image(image_path))
        mask = tv_tensors.Mask(torch.from_numpy(read_class_png(mask_path)).long())
        if mask.shape != image.shape[-2:]:
            raise DataError(f"{mask_path}: mask is {tuple(mask.shape)}, its image {tuple(image.shape[-2:])}")
        image, mask = self.transform(image, mask)
        return image, mask


def collate_padded(batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack samples of different sizes: images padded with 0 and masks with 255 (ignored) at the bottom and
    right, to the largest height and width in the batch.

    Returns:
        Images ``(B, 3, H, W)`` and masks ``(B, H, W)``; padded pixels count for nothing in the loss or metrics.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], height, width, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), height, width), IGNORE_INDEX, dtype=torch.int64)
    for index, (image, mask) in enumerate(batch):
        images[index, :, : image.shape[-2], : image.shape[-1]] = image
        masks[index, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


def read_class_png(path: Path) -> np.ndarray:
    """A VOC ``SegmentationClass`` PNG as ``uint8`` ``(H, W)`` class indices (255: ignore).

    The PNG is palette-coded: its pixel values are the indices themselves, whatever colours the palette shows.
    """
    try:
        with Image.open(path) as png:
            if png.mode not in ("P", "L"):
                raise DataError(
                    f"{path}: expected a palette (or grey) PNG of class indices, got mode {png.mode}"
                )
            return np.array(png, dtype=np.uint8)  # a writable copy, for torch.from_numpy
    except OSError as error:
        raise DataError(f"{path}: cannot read the mask ({error})") from error


def _size_of(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as file:
            return file.size
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from error


class VOCSegmentationDataModule(L.LightningDataModule):
    """PASCAL VOC semantic segmentation: batches of images ``(B, 3, H, W)`` and masks ``(B, H, W)``.

    Masks are ``int64`` class indices: 0 the background, 1..20 :data:`VOC_CLASSES`, 255 ignored (object borders
    and padding). Training samples are resized so that their shorter side is ``crop_size`` times a random factor
    in ``scale_range`` (torchvision's segmentation reference), randomly cropped to ``crop_size`` (padded
    with 255, the ignore index, where the image is smaller) and flipped. Evaluation samples, by default, are
    resized so their shorter side is ``crop_size`` and centre-cropped to ``crop_size`` square; with ``eval_size``
    they are whole images with the shorter side resized to ``eval_size`` (torchvision's reference evaluates at
    520), stacked by padding each batch to its largest image with 255 in the masks (batch size 1 pads nothing).
    Images are ``float32`` in 0..1 (the model normalises).

    Args:
        root: a folder holding ``VOCdevkit/VOC<year>`` (see :class:`VOCDetectionDataModule`).
        year: ``"2007"`` or ``"2012"``.
        train_split: the ``ImageSets/Segmentation`` list to train on.
        val_split: the list to validate on; None for no validation.
        test_split: the list to test on; None tests on ``val_split``.
        download: download the year's archives through torchvision when they are found nowhere.
        crop_size: side of the square samples.
        scale_range: training scale jitter: the shorter side becomes ``crop_size`` times a factor in this range.
        flip: random horizontal flips in training.
        batch_size: images per batch per device.
        eval_batch_size: images per batch for validation and test; defaults to ``batch_size``.
        num_workers: processes decoding images.
        eval_size: evaluate whole images, shorter side resized to this; None: the centre ``crop_size`` square.
    """

    #: the object classes: label ``i`` is ``classes[i - 1]``, 0 is the background (not listed)
    classes = list(VOC_CLASSES)

    def __init__(
        self,
        root: str | None = None,
        *,
        year: str = "2012",
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = None,
        download: bool = False,
        crop_size: int = 320,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        eval_size: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 < scale_range[0] <= scale_range[1]:
            raise DataError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
        if crop_size < 1 or (eval_size is not None and eval_size < 1):
            raise DataError(f"crop_size and eval_size must be at least 1, got {crop_size} and {eval_size}")
        self.root, self.year, self.download = root, str(year), download
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.crop_size, self.flip = crop_size, flip
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.eval_size = num_workers, eval_size
        self.datasets: dict[str, _SegmentationSamples] = {}

    @property
    def num_classes(self) -> int:
        """21: the background and the 20 VOC classes (255 is ignored, not a class)."""
        return len(self.classes) + 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches, for the model summary's output shapes."""
        return (3, self.crop_size, self.crop_size)

    def transform(self, *, train: bool) -> v2.Compose:
        """The pipeline of the training or the evaluation samples; the mask moves with the image."""
        size = self.crop_size
        steps: list[v2.Transform] = []
        if train:
            low, high = (round(size * s) for s in self.scale_range)
            steps.append(
                v2.RandomResize(low, high + 1, antialias=True)
                if high > low
                else v2.Resize(low, antialias=True)
            )
            steps.append(
                v2.RandomCrop(
                    size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
                )
            )
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
        elif self.eval_size is not None:
            steps.append(v2.Resize(self.eval_size, antialias=True))
        else:
            steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
        return v2.Compose(steps)

    def prepare_data(self) -> None:
        """Find the files, downloading them on one process per node when ``download`` is set."""
        self._folder(download=self.download)

    def _folder(self, *, download: bool) -> Path:
        wanted = [s for s in self.splits.values() if s is not None]
        return _voc_folder(
            self.root, self.year, "Segmentation", wanted, "SegmentationClass", download=download
        )

    def _pairs(self, folder: Path, name: str) -> list[tuple[Path, Path]]:
        pairs = []
        for image_id in _image_ids(folder, "Segmentation", name):
            image = folder / "JPEGImages" / f"{image_id}.jpg"
            mask = folder / "SegmentationClass" / f"{image_id}.png"
            for path in (image, mask):
                if not path.is_file():
                    raise DataError(f"{path}: listed in ImageSets/Segmentation/{name}.txt but does not exist")
            # headers only: a wrong-sized mask is reported here, in one line, not later inside a worker
            if (mask_size := _size_of(mask)) != (image_size := _size_of(image)):
                raise DataError(
                    f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {image.name} is "
                    f"{image_size[0]}x{image_size[1]}"
                )
            pairs.append((image, mask))
        return pairs

    def setup(self, stage: str | None = None) -> None:
        """List the image and mask files of every split and check that each mask has its image's size."""
        if self.datasets:
            return
        folder = self._folder(download=False)
        for split, name in self.splits.items():
            if name is not None:
                self.datasets[split] = _SegmentationSamples(
                    self._pairs(folder, name), self.transform(train=split == "train")
                )
        if "test" not in self.datasets and "val" in self.datasets:
            self.datasets["test"] = self.datasets["val"]

    def _loader(self, split: str, *, train: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # whole images differ in size; crops all have crop_size
            collate_fn=collate_padded if not train and self.eval_size is not None else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented batches of stacked tensors."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | list[Any]:
        """Validation batches in order (an empty list, which skips validation, when there is none)."""
        if not self.datasets:
            self.setup()
        return self._loader("val", train=False) if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader:
        """Test batches in order (the validation set when there is no test split)."""
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test batches, for ``python -m zoo.predict``."""
        return self._loader("test", train=False)
