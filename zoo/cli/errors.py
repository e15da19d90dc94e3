"""How every command answers: bad input is one line on stderr and exit status 2, Ctrl-C is status 130.

A :class:`~zoo.errors.ZooError` raised anywhere below a command (or an error caused by one: jsonargparse and
Lightning wrap what is raised inside them) is the user's input being wrong, and gets one line; anything else is
a bug and keeps its traceback. An error that every process of a multi-process run raised together (``every_rank``,
:mod:`zoo.distributed`) is said by rank zero alone; the other ranks end quietly with the same status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from zoo.cli.environment import is_child_rank, outlive_launcher
from zoo.errors import ZooError

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "answer_bad_input", "one_line", "user_error"]

#: exit status for input the command cannot use
EXIT_BAD_INPUT = 2
#: exit status after Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130
#: longest message printed; jsonargparse can explain one nested error over pages
_LONGEST = 400


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of spaces folded, cut to a readable length."""
    text = " ".join(message.split())
    return text if len(text) <= _LONGEST else text[: _LONGEST - 3] + "..."


def user_error(error: BaseException) -> BaseException | None:
    """The user-facing error behind ``error``, following ``__cause__`` and ``__context__``; None for a bug."""
    user_errors: tuple[type[BaseException], ...] = (ZooError,)
    if "lightning" in sys.modules:  # only Lightning can have raised its own kind
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        user_errors += (MisconfigurationException,)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, user_errors):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def answer_bad_input(program: str, run: Callable[[], object]) -> int:
    """Run a command's body and turn its outcome into an exit status.

    Args:
        program: what the message starts with (``zoo fit``).
        run: the command's work.

    Returns:
        0 when ``run`` returns, :data:`EXIT_BAD_INPUT` after a user error (one line on stderr, from rank zero
        alone when every rank raised it), :data:`EXIT_INTERRUPTED` after Ctrl-C. Other exceptions propagate with
        their traceback.
    """
    try:
        run()
    except Exception as error:
        found = user_error(error)
        if found is None:
            raise
        together = bool(getattr(found, "every_rank", False))
        if not (together and is_child_rank()):
            print(f"{program}: error: {one_line(str(found))}", file=sys.stderr)
        if together:
            outlive_launcher()
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
