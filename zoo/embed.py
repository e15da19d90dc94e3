"""Embed a dataset with a trained autoencoder: ``python -m zoo.embed --ckpt PATH --out FILE.npz|.pt``.

Writes the encoder's embedding of every image of one split (``--split train|val|test``, default ``test``), in
the split's order (not shuffled; not augmented for the in-memory sets), with its label:

- ``.npz`` (NumPy): ``embeddings`` float32 ``(N, D)``, ``labels`` int64 ``(N,)``, ``classes`` (the class
  names, when the data has them); read with ``numpy.load(FILE)``;
- ``.pt`` (PyTorch): a dict of the same, as tensors and a list; read with ``torch.load(FILE, weights_only=True)``.

The checkpoint is read as ``python -m zoo.test`` reads it: with the ``config.yaml`` of its run folder (or
``--recipe``) and ``torch.load(weights_only=True)``; other arguments override that config (``--data.root DIR``).
An existing output file is never overwritten. Bad input gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from zoo.cli import _quiet_defaults, answer_bad_input
from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import Tensor

    from zoo.tasks.autoencoder import AutoencoderTask

__all__ = [
    "SPLITS",
    "SUFFIXES",
    "check_output",
    "embed_split",
    "load_autoencoder",
    "main",
    "write_embeddings",
]

#: the splits a DataModule holds
SPLITS = ("train", "val", "test")
#: the output formats, by file suffix
SUFFIXES = (".npz", ".pt")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ZooError(message)


def _parser() -> _Parser:
    # torch, Lightning and the task are imported only once the arguments are checked: bad ones answer at once
    parser = _Parser(
        prog="python -m zoo.embed",
        description="Write the embeddings and labels of a split, from an autoencoder checkpoint. Other "
        "--key value arguments override the run's config (for example --data.root DIR).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--ckpt", required=True, help="a checkpoint written by zoo.fit (best.ckpt, last.ckpt)"
    )
    parser.add_argument("--out", required=True, help="the file to write: .npz (NumPy) or .pt (PyTorch)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which images (default: test)")
    parser.add_argument(
        "--recipe", help="the recipe the checkpoint was trained with, when it is not in a run folder"
    )
    return parser


def load_autoencoder(
    ckpt: str | Path, *, recipe: str | None = None, overrides: Sequence[str] = ()
) -> tuple[AutoencoderTask, Any]:
    """The autoencoder of a checkpoint, in eval mode on the best device, and its DataModule.

    Args:
        ckpt: a checkpoint written by ``zoo.fit``.
        recipe: its recipe (name or file), needed when the checkpoint is not in its run folder.
        overrides: ``--key value`` arguments over the config (``["--data.root", "/data"]``).

    Raises:
        ZooError: the checkpoint is missing, unsafe, has no config, or holds something other than an autoencoder.
    """
    from zoo.tasks.autoencoder import AutoencoderTask
    from zoo.visualize import _load

    task, data = _load(argparse.Namespace(ckpt=str(ckpt), recipe=recipe), list(overrides))
    if not isinstance(task, AutoencoderTask):
        raise ZooError(f"checkpoint {ckpt} holds a {type(task).__name__}, not an AutoencoderTask")
    return task, data


def embed_split(task: AutoencoderTask, data: Any, split: str) -> tuple[Tensor, Tensor]:
    """Embeddings and labels of every image of ``split``, in order.

    The images come from the DataModule's evaluation loader: not shuffled, and for the in-memory sets (MNIST
    family, CIFAR) not augmented; an image folder's train split keeps its training transforms.

    Args:
        task: the autoencoder, as :func:`load_autoencoder` gives it.
        data: a zoo DataModule (it has the evaluation loader ``_loader(split, train=False)``).
        split: ``train``, ``val`` or ``test``.

    Returns:
        float32 embeddings ``(N, D)`` and int64 labels ``(N,)``, on the CPU.

    Raises:
        ZooError: an unknown or empty split, or a DataModule without the evaluation loader.
    """
    import torch

    from zoo.visualize import _progress

    if split not in SPLITS:
        raise ZooError(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    if not callable(getattr(data, "_loader", None)):
        raise ZooError(f"{type(data).__name__} cannot give its {split} split in order (no _loader)")
    data.prepare_data()
    data.setup("test")
    loader = data._loader(split, train=False)
    if len(loader) == 0:
        raise ZooError(f"the {split} split has no images")
    device = next(task.parameters()).device
    embeddings: list[Tensor] = []
    labels: list[Tensor] = []
    with torch.no_grad():
        for images, batch_labels in _progress(loader, len(loader), f"embedding the {split} split"):
            embeddings.append(task.encode(images.to(device)).float().cpu())
            labels.append(batch_labels.cpu())
    return torch.cat(embeddings), torch.cat(labels).long()


def write_embeddings(
    path: Path, embeddings: Tensor, labels: Tensor, classes: Sequence[str] | None = None
) -> Path:
    """Write embeddings and labels to a new ``.npz`` or ``.pt`` file (never over an existing one).

    Args:
        path: the file; its suffix chooses the format.
        embeddings: ``(N, D)``.
        labels: ``(N,)``.
        classes: the class names in label order, or None.

    Returns:
        ``path``.

    Raises:
        ZooError: the suffix is neither ``.npz`` nor ``.pt``, or the file exists.
    """
    import numpy as np
    import torch

    check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "xb") as file:
            if path.suffix == ".npz":
                arrays: dict[str, Any] = {"embeddings": embeddings.numpy(), "labels": labels.numpy()}
                if classes is not None:
                    arrays["classes"] = np.array([str(name) for name in classes])
                np.savez(file, **arrays)
            else:
                content: dict[str, Any] = {"embeddings": embeddings, "labels": labels}
                if classes is not None:
                    content["classes"] = [str(name) for name in classes]
                torch.save(content, file)
    except FileExistsError:  # written in the meantime
        raise ZooError(f"{path} exists; choose another --out or move the file") from None
    return path


def check_output(path: Path) -> None:
    """Refuse an output file with an unknown suffix, or one that exists.

    Raises:
        ZooError: the suffix is neither ``.npz`` nor ``.pt``, or the file exists.
    """
    if path.suffix not in SUFFIXES:
        raise ZooError(f"--out {path} must end in .npz (NumPy) or .pt (PyTorch)")
    if path.exists():
        raise ZooError(f"{path} exists; choose another --out or move the file")


def _run(options: argparse.Namespace, overrides: list[str]) -> None:
    out = Path(options.out).expanduser()
    check_output(out)  # before any work, not after a long pass over the data
    _quiet_defaults()
    import lightning  # noqa: F401  (it sets its loggers' levels when imported: quieten them after)

    for name in ("lightning.pytorch", "lightning.fabric"):  # "Seed set", "GPU available": not news here
        logging.getLogger(name).setLevel(logging.WARNING)
    task, data = load_autoencoder(options.ckpt, recipe=options.recipe, overrides=overrides)
    embeddings, labels = embed_split(task, data, options.split)
    classes = getattr(data, "classes", None)
    write_embeddings(out, embeddings, labels, list(classes) if classes is not None else None)
    print(f"wrote {len(labels)} embeddings of size {embeddings.shape[1]} ({options.split} split) to {out}")


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m zoo.embed``; returns the exit status (2 for bad input, with one line on stderr).

    Args:
        argv: the arguments, without the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> None:
        _run(*_parser().parse_known_args(argv))

    return answer_bad_input("zoo.embed", run)


if __name__ == "__main__":
    sys.exit(main())
