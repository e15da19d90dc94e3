"""The one exception type that entry points turn into a single line and exit status 2."""

import errno

__all__ = ["DISK_FULL", "DataError", "WriteError", "ZooError", "write_failure"]

#: the errors of a file system with no room left: no space, or no quota
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class ZooError(Exception):
    """A problem with the user's input (recipe, data, checkpoint, arguments), described in one line.

    ``every_rank`` is set on an error that every process of a multi-process run raises together, having agreed on
    it (:mod:`zoo.distributed`): rank zero alone says it.
    """

    every_rank: bool = False


class DataError(ZooError):
    """A dataset that is missing, truncated, corrupt or disagrees with the configuration."""


class WriteError(ZooError):
    """A file a run writes could not be written (a full disk, a quota, a read-only folder); what was there before
    is kept."""


def write_failure(error: OSError) -> str:
    """What made a write fail, in the words a message uses: ``no space left on device``, ``disk quota exceeded``,
    ``read-only file system``."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    return (error.strerror or str(error)).lower()
