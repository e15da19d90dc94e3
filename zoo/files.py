"""Files written whole or not at all: the new contents go beside the file's name and are renamed over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PARTIAL", "replaced"]

#: the suffix of a file being written
PARTIAL = ".partial"


@contextmanager
def replaced(path: Path, suffix: str = PARTIAL) -> Iterator[Path]:
    """The path to write ``path``'s new contents to; renamed over ``path`` when the block ends.

    An exception in the block (a full disk, a refused download, Ctrl-C) removes what was written and leaves
    ``path`` as it was; the exception goes on.

    Args:
        path: the file to replace.
        suffix: added to its name while it is written (``.partial``; give each process its own where several may
            write at once).
    """
    partial = path.with_name(path.name + suffix)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
