"""The IDX file format of MNIST and its relatives (LeCun et al.), plain or ``.gz``.

Two zero bytes, a type byte (``0x08``: unsigned bytes), the number of dimensions, each dimension as a big-endian
32-bit integer, then the data. Images are ``(N, 28, 28)``, labels ``(N,)``.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from zoo.errors import DataError

__all__ = ["read_idx"]

_UNSIGNED_BYTE = 0x08


def read_idx(path: Path) -> Tensor:
    """Read an IDX file of unsigned bytes into a ``uint8`` tensor shaped as its header says.

    Raises:
        DataError: if the file is truncated, not gzip when named ``.gz``, or has the wrong magic number.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error}); the file is truncated or corrupt") from error
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != _UNSIGNED_BYTE or not 1 <= data[3] <= 4:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes (magic number {data[:4].hex() or 'missing'})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: the IDX header is cut short; the file is truncated")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise DataError(
            f"{path}: holds {len(data)} bytes but its header {dims} needs {expected}; the file is truncated or corrupt"
        )
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)
