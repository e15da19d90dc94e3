"""The CIFAR-10 and CIFAR-100 "python version" pickles (Krizhevsky 2009).

Each file is a pickled dict with ``data`` (``N x 3072`` bytes, channel-major 32x32 RGB) and ``labels``
(CIFAR-10) or ``fine_labels`` (CIFAR-100). The pickles are read with an unpickler that builds only NumPy arrays,
lists, dicts and strings: a file that tries to call anything else is refused rather than executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.errors import DataError

__all__ = ["read_cifar_batch"]

# What a NumPy array needs to rebuild itself from a pickle, across NumPy 1 and 2; nothing else is allowed.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: str) -> tuple[Tensor, Tensor]:
    """Read one CIFAR pickle into ``uint8`` images ``(N, 3, 32, 32)`` and ``int64`` labels ``(N,)``.

    Raises:
        DataError: if the file is truncated, not a CIFAR pickle, or tries to unpickle code.
    """
    try:
        with open(path, "rb") as file:
            batch = _ArraysOnly(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DataError(
            f"{path}: not a readable CIFAR pickle ({error}); the file is truncated or corrupt"
        ) from error
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with 'data' and '{label_key}', found {keys}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(
            f"{path}: 'data' should be uint8 N x 3072 with N labels, got {data.dtype} {data.shape}, {len(labels)} labels"
        )
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64))
