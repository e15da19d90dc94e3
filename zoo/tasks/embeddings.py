"""Embeddings of a split by a trained autoencoder, and the files they are written to.

Shared by :meth:`zoo.tasks.AutoencoderTask.write_predictions` (``python -m zoo.predict``) and
``python -m zoo.embed``. The formats, chosen by the file's suffix:

- ``.npz`` (NumPy): ``embeddings`` float32 ``(N, D)``, ``labels`` int64 ``(N,)``, ``classes`` (the class
  names, when the data has them); read with ``numpy.load(FILE)``;
- ``.pt`` (PyTorch): a dict of the same, as tensors and a list; read with ``torch.load(FILE, weights_only=True)``.

An existing file is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from torch import Tensor

from zoo.data.base import Split, ZooDataModule
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.tasks.autoencoder import AutoencoderTask

__all__ = ["SPLITS", "SUFFIXES", "check_output", "embed_split", "write_embeddings"]

#: the splits a DataModule holds
SPLITS = ("train", "val", "test")
#: the output formats, by file suffix
SUFFIXES = (".npz", ".pt")


def embed_split(task: AutoencoderTask, data: Any, split: str) -> tuple[Tensor, Tensor]:
    """Embeddings and labels of every image of ``split``, in order.

    The images come from the DataModule's evaluation loader (``dataloader(split, train=False)``): not shuffled,
    and for the in-memory sets (MNIST family, CIFAR) not augmented. A progress bar shows on a terminal.

    Args:
        task: the autoencoder, in eval mode.
        data: a :class:`~zoo.data.base.ZooDataModule` whose batches are ``(images, labels)``.
        split: ``train``, ``val`` or ``test``.

    Returns:
        float32 embeddings ``(N, D)`` and int64 labels ``(N,)``, on the CPU.

    Raises:
        ZooError: an unknown or empty split, or data that is not a ``ZooDataModule``.
    """
    if split not in SPLITS:
        raise ZooError(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    if not isinstance(data, ZooDataModule):
        raise ZooError(
            f"{type(data).__name__} is not a zoo DataModule: it cannot give its {split} split in order"
        )
    data.prepare_data()
    data.setup("test")
    loader = data.dataloader(cast(Split, split), train=False)
    total = len(loader) if isinstance(loader, Sized) else None
    if total == 0:
        raise ZooError(f"the {split} split has no images")
    device = next(task.parameters()).device
    embeddings: list[Tensor] = []
    labels: list[Tensor] = []
    console = Console(stderr=True)
    batches = track(loader, description=f"embedding the {split} split", total=total, console=console,
                    transient=True, disable=not console.is_terminal)  # fmt: skip
    with torch.no_grad():
        for images, batch_labels in batches:
            embeddings.append(task.encode(images.to(device)).float().cpu())
            labels.append(batch_labels.cpu())
    if not embeddings:
        raise ZooError(f"the {split} split has no images")
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
        raise ZooError(f"{path} exists; choose another file or move it") from None
    return path


def check_output(path: Path) -> None:
    """Refuse an output file with an unknown suffix, or one that exists.

    Raises:
        ZooError: the suffix is neither ``.npz`` nor ``.pt``, or the file exists.
    """
    if path.suffix not in SUFFIXES:
        raise ZooError(f"{path} must end in .npz (NumPy) or .pt (PyTorch)")
    if path.exists():
        raise ZooError(f"{path} exists; choose another file or move it")
