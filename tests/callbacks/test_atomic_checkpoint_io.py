"""AtomicCheckpointIO: a checkpoint is written whole or not at all, and a full disk is one line that says what is left."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from zoo.callbacks import AtomicCheckpointIO
from zoo.errors import WriteError


class FillsUp(TorchCheckpointIO):
    """Writes the first ``room`` checkpoints, then part of the next before the disk is full."""

    def __init__(self, room: int) -> None:
        self.room = room

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if self.room == 0:
            Path(path).write_bytes(b"PK\x03\x04" + bytes(64))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.room -= 1
        super().save_checkpoint(checkpoint, path, storage_options)


def test_a_failed_write_keeps_the_previous_checkpoint_and_says_so(tmp_path: Path) -> None:
    io = AtomicCheckpointIO(FillsUp(room=1))
    best = tmp_path / "best.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, best)
    assert io.load_checkpoint(best)["step"] == 1 and not list(tmp_path.glob("*.partial"))
    with pytest.raises(WriteError) as error:
        io.save_checkpoint({"step": torch.tensor(2)}, best)
    assert str(error.value) == (
        f"no space left on device writing {best}; the previous best.ckpt is intact: free some space, then resume "
        "from last.ckpt"
    )
    assert io.load_checkpoint(best)["step"] == 1 and not list(tmp_path.glob("*.partial"))
    with pytest.raises(WriteError, match=r"; no other.ckpt was written yet: "):
        io.save_checkpoint({"step": torch.tensor(3)}, tmp_path / "other.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]


def test_a_partial_file_is_written_as_it_is_and_its_failure_left_to_the_caller(tmp_path: Path) -> None:
    io = AtomicCheckpointIO(FillsUp(room=0))
    with pytest.raises(
        OSError
    ) as error:  # LastCheckpoint renames its own .partial file, and answers this itself
        io.save_checkpoint({"step": torch.tensor(1)}, tmp_path / "last.ckpt.partial")
    assert not isinstance(error.value, WriteError) and error.value.errno == errno.ENOSPC
