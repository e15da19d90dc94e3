"""Callbacks, one per file, usable with any logger."""

from zoo.callbacks.last_checkpoint import LastCheckpoint

__all__ = ["LastCheckpoint"]
