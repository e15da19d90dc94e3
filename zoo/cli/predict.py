"""``zoo predict``: run a checkpoint over the prediction split and write what its task predicts.

A classifier writes a CSV (index, label, predicted class, confidence, class name); detection writes JSON,
segmentation PNG masks, style transfer PNG images, the autoencoder its embeddings: each task's own format,
written through :class:`zoo.callbacks.PredictionWriter`, Lightning's ``BasePredictionWriter``. The output
defaults to ``<checkpoint>-predictions<suffix>`` beside the checkpoint and is never overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from zoo.callbacks import PredictionWriter
from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import renamed
from zoo.cli.lightning import ZooCLI, run_evaluation
from zoo.errors import ZooError

__all__ = ["PredictCLI", "main"]


class PredictCLI(ZooCLI):
    """LightningCLI's ``predict``, writing through :class:`~zoo.callbacks.PredictionWriter`."""

    command = "predict"
    usage = "zoo predict --ckpt_path CKPT [--recipe NAME|PATH] [--output FILE|FOLDER] [--KEY VALUE ...]"

    def add_arguments_to_parser(self, parser: Any) -> None:
        """``--output``, besides the keys every recipe may hold."""
        super().add_arguments_to_parser(parser)
        parser.add_argument(
            "--output",
            type=str | None,
            default=None,
            help="Where the predictions go (default: beside the checkpoint); never overwritten.",
        )

    def before_instantiate_classes(self) -> None:
        """The writer keeps the predictions; Lightning need not return them too."""
        super().before_instantiate_classes()
        self.options.return_predictions = False

    def extra_callbacks(self) -> list[Callback]:
        """The prediction writer, once the output is known to be new."""
        checkpoint = Path(self.options.ckpt_path)
        suffix = self.model.predictions_suffix
        output = (
            Path(self.options.output).expanduser()
            if self.options.output
            else checkpoint.with_name(f"{checkpoint.stem}-predictions{suffix}")
        )
        if output.exists():
            raise ZooError(f"{output} exists; choose another file with --output")
        self.writer = PredictionWriter(output)
        return [self.writer]

    def after_predict(self) -> None:
        """Say what was written (rank zero)."""
        if self.trainer.is_global_zero:
            print(self.writer.summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo predict``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo predict", list(sys.argv[1:] if argv is None else argv), ["--output", "--ckpt_path"]
    )
    return answer_bad_input("zoo predict", lambda: run_evaluation(PredictCLI, arguments))
