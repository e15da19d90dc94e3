"""Callbacks, one per file, usable with any logger."""

from zoo.callbacks.last_checkpoint import LastCheckpoint
from zoo.callbacks.log_config import LogConfig

__all__ = ["LastCheckpoint", "LogConfig"]
