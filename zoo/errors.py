"""The one exception type that entry points turn into a single line and exit status 2."""

__all__ = ["DataError", "WriteError", "ZooError"]


class ZooError(Exception):
    """A problem with the user's input (recipe, data, checkpoint, arguments), described in one line."""


class DataError(ZooError):
    """A dataset that is missing, truncated, corrupt or disagrees with the configuration."""


class WriteError(ZooError):
    """A file a run writes could not be written (a full disk, a quota, a read-only folder); what was there before
    is kept."""
