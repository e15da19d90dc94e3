"""``zoo predict``: run a checkpoint over new image files, or over the prediction split, and write what it predicts.

``zoo predict --ckpt_path RUN/best.ckpt PATH...`` predicts image files and folders of them (any mix of formats,
sizes, grey, RGBA and palette images) with a classification, detection or segmentation run:

- a classifier writes one CSV row per file with its class, the probability, and the next classes of the top
  ``--top_k`` (``file,class,probability,class_2,probability_2,...``);
- a detector writes one CSV row per box scored ``--score_threshold`` or more (``file,class,score,x1,y1,x2,y2``, in
  the file's pixels; a file with no box gets a row of its own);
- a segmenter writes a folder of palette PNG masks, one per file at the file's size (pixel value = class).

``--overlay DIR`` also writes each image with its class, boxes or mask drawn on it. The images are made into inputs
from what the checkpoint keeps of its data (:mod:`zoo.data.photos`), so no training data is needed. A file that
does not decode is named on stderr, skipped and counted in the last line.

Without PATHs, the DataModule's prediction split is predicted: a classifier writes a CSV (index, label, predicted
class, confidence, class name), detection JSON, segmentation PNG masks, style transfer PNG images, the autoencoder
its embeddings, each task's own format, written through :class:`zoo.callbacks.PredictionWriter`, Lightning's
``BasePredictionWriter``. The output defaults to ``<checkpoint>-predictions<suffix>`` beside the checkpoint and is
never overwritten.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from zoo.callbacks import PredictionWriter
from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import renamed, token_value
from zoo.cli.lightning import ZooCLI, run_evaluation
from zoo.data.photos import PHOTO_KINDS
from zoo.errors import ZooError

__all__ = ["PredictCLI", "main", "split_paths"]

#: the DataModule of image files given on the command line
PHOTOS = "zoo.data.photos.PhotosDataModule"


def split_paths(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` split into LightningCLI's arguments and image paths.

    Every ``--flag`` without ``=`` takes the next token as its value (``-h`` takes none); every other token is a
    path: ``--ckpt_path best.ckpt a.jpg photos/ --top_k 3`` gives ``(["--ckpt_path", "best.ckpt", "--top_k", "3"],
    ["a.jpg", "photos/"])``.
    """
    flags: list[str] = []
    paths: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("--"):
            flags.append(token)
            if "=" not in token:
                flags += [value for value in [next(tokens, None)] if value is not None]
        elif token == "-h":
            flags.append(token)
        else:
            paths.append(token)
    return flags, paths


class PredictCLI(ZooCLI):
    """LightningCLI's ``predict``, writing through :class:`~zoo.callbacks.PredictionWriter`."""

    command = "predict"
    usage = (
        "zoo predict --ckpt_path CKPT [PATH ...] [--top_k K] [--score_threshold S] [--overlay DIR] "
        "[--recipe NAME|PATH] "
        "[--output FILE|FOLDER] [--KEY VALUE ...]   (PATH: an image file or a folder of them)"
    )

    def add_arguments_to_parser(self, parser: Any) -> None:
        """``--output``, ``--top_k``, ``--score_threshold`` and ``--overlay``, besides the keys every recipe may
        hold."""
        super().add_arguments_to_parser(parser)
        parser.add_argument(
            "--output",
            type=str | None,
            default=None,
            help="Where the predictions go (default: beside the checkpoint); never overwritten.",
        )
        parser.add_argument(
            "--top_k",
            type=int | None,
            default=None,
            help="Image files: classes per image (default: up to 5).",
        )
        parser.add_argument(
            "--score_threshold",
            type=float | None,
            default=None,
            help="Image files, detection runs: the least score of a box written and drawn (default: 0.5).",
        )
        parser.add_argument(
            "--overlay", type=str | None, default=None, help="Image files: a folder for the labelled images."
        )

    def before_instantiate_classes(self) -> None:
        """The writer keeps the predictions; Lightning need not return them too. Image files are made into inputs
        for the checkpoint's kind of task (classification, detection or segmentation)."""
        super().before_instantiate_classes()
        options = self.options
        options.return_predictions = False
        photos = str(getattr(options.data, "class_path", "")) == PHOTOS
        image_options = {"--top_k": options.top_k, "--score_threshold": options.score_threshold,
                         "--overlay": options.overlay}  # fmt: skip
        given = [flag for flag, value in image_options.items() if value is not None]
        if not photos and given:
            raise ZooError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for image files: give them after "
                "--ckpt_path (PATH ...)"
            )
        if not photos:
            return
        kind = _kind_of(str(options.model.class_path))
        if kind not in PHOTO_KINDS:
            raise ZooError(
                f"image files are predicted by {', '.join(PHOTO_KINDS)} runs, and {options.ckpt_path} holds a "
                f"{kind} task: predict its data's split without image paths"
            )
        options.data.init_args.kind = kind

    def extra_callbacks(self) -> list[Callback]:
        """The prediction writer, once the output is known to be new."""
        checkpoint = Path(self.options.ckpt_path)
        photos = str(getattr(self.options.data, "class_path", "")) == PHOTOS
        # image files: a CSV of classes or boxes, or a folder of masks
        suffix = self.model.predictions_suffix if not photos or self.model.kind == "segmentation" else ".csv"
        output = (
            Path(self.options.output).expanduser()
            if self.options.output
            else checkpoint.with_name(f"{checkpoint.stem}-predictions{suffix}")
        )
        if output.exists():
            raise ZooError(f"{output} exists; choose another file with --output")
        self.writer = PredictionWriter(
            output,
            top_k=self.options.top_k,
            overlay=self.options.overlay,
            threshold=self.options.score_threshold,
        )
        return [self.writer]

    def after_predict(self) -> None:
        """Name the files that did not decode on stderr, then say what was written (rank zero)."""
        if self.trainer.is_global_zero:
            for file, reason in self.writer.skipped:
                print(f"zoo predict: skipped {file}: {reason}", file=sys.stderr)
            print(self.writer.summary)


def _kind_of(class_path: str) -> str:
    """The ``kind`` of the task class ``class_path`` names (``classification``, ...), or ``unknown``."""
    module, _, name = class_path.rpartition(".")
    try:
        return str(getattr(getattr(importlib.import_module(module), name), "kind", "unknown"))
    except (ImportError, ValueError, AttributeError):
        return "unknown"


def _with_photos(flags: list[str], paths: list[str]) -> list[str]:
    """``flags`` with the DataModule replaced by :data:`PHOTOS` over ``paths``, read by the checkpoint's record."""
    checkpoint = token_value(flags, "--ckpt_path")
    if checkpoint is None:
        raise ZooError(
            "zoo predict needs --ckpt_path (a checkpoint written by zoo fit) to predict image files"
        )
    data = {"class_path": PHOTOS, "init_args": {"paths": paths, "checkpoint": checkpoint}}
    return [*flags, "--data", json.dumps(data)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo predict``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo predict",
        list(sys.argv[1:] if argv is None else argv),
        ["--output", "--ckpt_path", "--top_k", "--score_threshold", "--overlay"],
    )
    flags, paths = split_paths(arguments)

    def run() -> None:
        run_evaluation(PredictCLI, _with_photos(flags, paths) if paths else flags)

    return answer_bad_input("zoo predict", run)
