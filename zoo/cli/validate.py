"""``zoo validate``: evaluate a checkpoint on the validation split and print its metrics as JSON.

The config comes from the checkpoint's run folder (its ``config.yaml``) or from ``--recipe``; other
``--key value`` arguments override it (``--data.root DIR``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zoo.cli.errors import answer_bad_input
from zoo.cli.lightning import ZooCLI, run_evaluation

__all__ = ["ValidateCLI", "main"]


class ValidateCLI(ZooCLI):
    """LightningCLI's ``validate``, printing the metrics."""

    command = "validate"
    usage = "zoo validate --ckpt_path CKPT [--recipe NAME|PATH] [--KEY VALUE ...]"

    def after_validate(self) -> None:
        """Print the validation metrics as JSON."""
        self.print_metrics()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo validate``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return answer_bad_input("zoo validate", lambda: run_evaluation(ValidateCLI, arguments))
