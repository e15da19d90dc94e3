"""What ``zoo predict`` writes for image files (:class:`~zoo.data.photos.PhotosDataModule`): a CSV row per file for a
classifier, a CSV row per box for a detector, a mask PNG per file for a segmenter, each in the file's own pixels,
and with ``--overlay`` the files with their predictions drawn on (:mod:`zoo.figures.labelled`).

The batches are what the tasks' ``predict_step`` returned, each holding ``label``, the number of every image in
``files`` (files that did not decode are absent); rows follow the order of ``files``, whatever order the batches
came in.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.figures.labelled import draw_detections, draw_label, draw_mask, resize_classes
from zoo.figures.overlays import class_name
from zoo.figures.saving import write_png
from zoo.tasks.segmentation import voc_palette

__all__ = [
    "file_names",
    "image_size",
    "write_file_detections",
    "write_file_masks",
    "write_file_predictions",
]


def image_size(file: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header."""
    with Image.open(file) as image:
        width, height = image.size
    return height, width


def file_names(files: Sequence[Path], suffix: str = ".png") -> list[str]:
    """A distinct file name for each of ``files``: its stem and ``suffix``, numbered (``cat-2.png``) where two
    files in different folders share a stem."""
    names: list[str] = []
    taken: set[str] = set()
    for file in files:
        name, count = f"{file.stem}{suffix}", 1
        while name in taken:
            count += 1
            name = f"{file.stem}-{count}{suffix}"
        taken.add(name)
        names.append(name)
    return names


def _by_file(batches: Sequence[dict[str, Any]], key: str) -> Iterator[tuple[int, Any]]:
    """``(file number, the image's entry of batch[key])`` of every image, in the order of the files."""
    found = [
        (int(number), entry)
        for batch in batches
        for number, entry in zip(batch["label"].tolist(), batch[key], strict=True)
    ]
    return iter(sorted(found, key=lambda pair: pair[0]))


def write_file_predictions(
    batches: Sequence[dict[str, Any]],
    output: Path,
    files: Sequence[Path],
    names: Sequence[str],
    top_k: int,
    overlay: Path | None = None,
) -> int:
    """Write one CSV row per image file, ``file,class,probability,class_2,probability_2,...``, to a new file.

    Args:
        batches: a classifier's predictions: ``label`` (each image's number in ``files``) and ``probabilities``
            ``(B, num_classes)``.
        output: the file; it must not exist.
        files: the image files by number.
        names: the class names by label.
        top_k: the classes given per image, most probable first (at most ``len(names)``).
        overlay: a folder for each file with its class and probability written on it, or None.

    Returns:
        The number of rows written.

    Raises:
        FileExistsError: ``output`` exists.
    """
    top_k = max(1, min(top_k, len(names)))
    header = ["file", "class", "probability"]
    for rank in range(2, top_k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    pictures = dict(zip(files, file_names(files), strict=True))
    output.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(output, "x", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for number, row in _by_file(batches, "probabilities"):
            probabilities, classes = row.float().topk(top_k)
            cells: list[object] = [str(files[number])]
            for p, c in zip(probabilities.tolist(), classes.tolist(), strict=True):
                cells += [names[c], f"{p:.6f}"]
            writer.writerow(cells)
            count += 1
            if overlay is not None:
                best, chance = int(classes[0]), float(probabilities[0])
                picture = draw_label(files[number], best + 1, f"{names[best]} {chance:.2f}")
                write_png(picture, overlay / pictures[files[number]])
    return count


def write_file_detections(
    batches: Sequence[dict[str, Any]],
    output: Path,
    files: Sequence[Path],
    names: Sequence[str],
    image_shape: Sequence[int],
    threshold: float,
    overlay: Path | None = None,
) -> tuple[int, int]:
    """Write one CSV row per detected box, ``file,class,score,x1,y1,x2,y2`` in the file's pixels, to a new file;
    a file with no box scored ``threshold`` or more gets one row with the file alone.

    Args:
        batches: a detector's predictions: ``label`` (each image's number in ``files``) and ``detections``, per
            image ``boxes`` ``(N, 4)`` ``XYXY`` in the pixels of the network's input, 1-based ``labels`` and
            ``scores``.
        output: the file; it must not exist.
        files: the image files by number.
        names: names by label, ``names[0]`` the background.
        image_shape: ``(C, H, W)`` of the network's input, which the boxes are mapped back from.
        threshold: the least score written.
        overlay: a folder for each file with its boxes drawn on it, or None.

    Returns:
        ``(images, boxes)``: the numbers of images and of boxes written.

    Raises:
        FileExistsError: ``output`` exists.
    """
    _, height, width = image_shape
    pictures = dict(zip(files, file_names(files), strict=True))
    output.parent.mkdir(parents=True, exist_ok=True)
    images = boxes_written = 0
    with open(output, "x", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "class", "score", "x1", "y1", "x2", "y2"])
        for number, found in _by_file(batches, "detections"):
            source = files[number]
            file_height, file_width = image_size(source)
            keep = found["scores"] >= threshold
            scale = torch.tensor([file_width / width, file_height / height] * 2)
            boxes, labels, scores = (
                found["boxes"][keep].float() * scale,
                found["labels"][keep],
                found["scores"][keep],
            )
            captions = [
                f"{class_name(names, int(k))} {float(s):.2f}" for k, s in zip(labels, scores, strict=True)
            ]
            for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist(), strict=True):
                writer.writerow(
                    [str(source), class_name(names, label), f"{score:.6f}", *(f"{v:.1f}" for v in box)]
                )
            if not len(boxes):
                writer.writerow([str(source), "", "", "", "", "", ""])
            images, boxes_written = images + 1, boxes_written + len(boxes)
            if overlay is not None:
                write_png(draw_detections(source, boxes, labels, captions), overlay / pictures[source])
    return images, boxes_written


def write_file_masks(
    batches: Sequence[dict[str, Any]],
    output: Path,
    files: Sequence[Path],
    names: Sequence[str],
    overlay: Path | None = None,
) -> int:
    """Write each file's predicted classes, at the file's size, as a palette PNG (pixel value = class, VOC's
    colours) named after the file into the new folder ``output``.

    Args:
        batches: a segmenter's predictions: ``label`` (each image's number in ``files``) and ``predicted``
            ``(B, H, W)`` classes.
        output: the folder; it must not exist.
        files: the image files by number.
        names: names by label, ``names[0]`` the background.
        overlay: a folder for each file with its classes painted on it, or None.

    Returns:
        The number of masks written.

    Raises:
        FileExistsError: ``output`` exists.
    """
    output.mkdir(parents=True, exist_ok=False)
    masks = dict(zip(files, file_names(files), strict=True))
    palette = voc_palette()
    count = 0
    for number, predicted in _by_file(batches, "predicted"):
        source = files[number]
        classes = resize_classes(predicted, image_size(source))
        png = Image.fromarray(np.ascontiguousarray(classes.to(torch.uint8).numpy()), mode="P")
        png.putpalette(palette)
        png.save(output / masks[source])
        count += 1
        if overlay is not None:
            write_png(draw_mask(source, classes, names), overlay / masks[source])
    return count
