"""``zoo embed --ckpt_path CKPT --output FILE.npz|.pt``: an autoencoder's embeddings of a split, with the labels.

Writes the encoder's embedding of every image of one split (``--split train|val|test``, default ``test``), in
the split's order (not shuffled; not augmented for the in-memory sets), with its label:

- ``.npz`` (NumPy): ``embeddings`` float32 ``(N, D)``, ``labels`` int64 ``(N,)``, ``classes`` (the class
  names, when the data has them); read with ``numpy.load(FILE)``;
- ``.pt`` (PyTorch): a dict of the same, as tensors and a list; read with ``torch.load(FILE, weights_only=True)``.

The checkpoint is read as ``zoo test`` reads it: with the ``config.yaml`` of its run folder (or ``--recipe``);
other ``--key value`` arguments override that config (``--data.root DIR``). An existing output file is never
overwritten. Bad input gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser, renamed
from zoo.errors import ZooError
from zoo.tasks.embeddings import SPLITS, check_output, embed_split, write_embeddings

if TYPE_CHECKING:
    from zoo.tasks.autoencoder import AutoencoderTask

__all__ = ["load_autoencoder", "main"]


def _parser() -> CommandParser:
    parser = CommandParser(
        "zoo embed",
        usage="zoo embed --ckpt_path CKPT --output FILE.npz|FILE.pt [--split train|val|test] [--recipe NAME|PATH] "
        "[--KEY VALUE ...]",
        description="Write the embeddings and labels of a split, from an autoencoder checkpoint. Other "
        "--key value arguments override the run's config (for example --data.root DIR).",
    )
    parser.add_argument(
        "--ckpt_path", required=True, help="a checkpoint written by zoo fit (best.ckpt, last.ckpt)"
    )
    parser.add_argument("--output", required=True, help="the file to write: .npz (NumPy) or .pt (PyTorch)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which images (default: test)")
    parser.add_argument(
        "--recipe", help="the recipe the checkpoint was trained with, when it is not in a run folder"
    )
    return parser


def load_autoencoder(
    ckpt_path: str | Path, *, recipe: str | None = None, overrides: Sequence[str] = ()
) -> tuple[AutoencoderTask, Any]:
    """The autoencoder of a checkpoint, in eval mode on the best device, and its DataModule.

    Args:
        ckpt_path: a checkpoint written by ``zoo fit``.
        recipe: its recipe (name or file), needed when the checkpoint is not in its run folder.
        overrides: ``--key value`` arguments over the config (``["--data.root", "/data"]``).

    Raises:
        ZooError: the checkpoint is missing, unsafe, has no config, or holds something other than an autoencoder.
    """
    from zoo.cli.loading import load_trained
    from zoo.tasks.autoencoder import AutoencoderTask

    task, data = load_trained(ckpt_path, recipe=recipe, overrides=overrides)
    if not isinstance(task, AutoencoderTask):
        raise ZooError(f"checkpoint {ckpt_path} holds a {type(task).__name__}, not an AutoencoderTask")
    return task, data


def _run(argv: list[str]) -> None:
    options, overrides = _parser().parse_known_args(argv)
    out = Path(options.output).expanduser()
    check_output(out)  # before any work, not after a long pass over the data
    import lightning  # noqa: F401  (it sets its loggers' levels when imported: quieten them after)

    for name in ("lightning.pytorch", "lightning.fabric"):  # "Seed set", "GPU available": not news here
        logging.getLogger(name).setLevel(logging.WARNING)
    task, data = load_autoencoder(options.ckpt_path, recipe=options.recipe, overrides=overrides)
    embeddings, labels = embed_split(task, data, options.split)
    from zoo.data import ZooDataModule

    classes = list(data.classes) if isinstance(data, ZooDataModule) and data.classes else None
    write_embeddings(out, embeddings, labels, classes)
    print(f"wrote {len(labels)} embeddings of size {embeddings.shape[1]} ({options.split} split) to {out}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo embed``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo embed", list(sys.argv[1:] if argv is None else argv), ["--ckpt_path", "--output"]
    )
    return answer_bad_input("zoo embed", lambda: _run(arguments))
