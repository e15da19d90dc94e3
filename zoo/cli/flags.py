"""One spelling for every flag, and the old spellings, still taken for one release with a notice.

Every command spells its flags as LightningCLI does, in ``snake_case`` with underscores: ``--ckpt_path`` for a
checkpoint, ``--output`` for what a command writes, ``--num_images``, ``--input_size``. Version 0.1 also had
``--ckpt``, ``--checkpoint``, ``--out`` and dashed names (``--input-size``); :func:`renamed` turns those into the
new spelling and prints one line saying so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from zoo.errors import ZooError

__all__ = ["OLD_SPELLINGS", "CommandParser", "renamed", "token_key", "token_value"]

#: old flag -> new flag, accepted until the release after 0.2
OLD_SPELLINGS: Mapping[str, str] = {
    "--ckpt": "--ckpt_path",
    "--checkpoint": "--ckpt_path",
    "--out": "--output",
    "--input-size": "--input_size",
    "--num-classes": "--num_classes",
    "--style-weight": "--style_weight",
    "--content-weight": "--content_weight",
    "--tv-weight": "--tv_weight",
    "--loss-weights": "--loss_weights",
    "--random-loss-network": "--random_loss_network",
}


def token_key(token: str) -> str:
    """The flag of a command-line token: ``--a.b`` for ``--a.b`` and for ``--a.b=value``."""
    return token.split("=", 1)[0]


def token_value(argv: Sequence[str], flag: str) -> str | None:
    """The value given to ``flag`` (``--flag value`` or ``--flag=value``), the last one if it is repeated."""
    value = None
    for index, token in enumerate(argv):
        if token == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif token.startswith(flag + "="):
            value = token.split("=", 1)[1]
    return value


def renamed(program: str, argv: Sequence[str], known: Sequence[str]) -> list[str]:
    """``argv`` with the old spellings of the flags in ``known`` replaced by the new ones.

    Args:
        program: the command, for the notice (``zoo visualize``).
        argv: its arguments.
        known: the new flags this command has; an old spelling of any other flag is left for the parser.

    Returns:
        The arguments in the new spelling. Each old spelling used prints one line on stderr.
    """
    result = []
    for token in argv:
        key = token_key(token)
        new = OLD_SPELLINGS.get(key)
        if new is not None and new in known:
            print(
                f"{program}: {key} is deprecated, use {new} (the old spelling goes in the next release)",
                file=sys.stderr,
            )
            token = new + token[len(key) :]
        result.append(token)
    return result


class CommandParser(argparse.ArgumentParser):
    """argparse for zoo's own commands: a bad argument raises :class:`~zoo.errors.ZooError` (one line, exit
    status 2) instead of printing the usage and exiting."""

    def __init__(self, prog: str, **kwargs: object) -> None:
        super().__init__(prog=prog, allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Raise the parser's complaint as a :class:`~zoo.errors.ZooError`."""
        raise ZooError(message)
