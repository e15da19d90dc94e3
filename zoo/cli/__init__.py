"""The command-line layer: ``zoo COMMAND``, the only part of zoo that knows about processes and exit codes.

:mod:`zoo.cli.app` holds the table of commands; each command is a module of its own (:mod:`zoo.cli.fit`,
:mod:`zoo.cli.test`, ...). The Lightning commands subclass :class:`zoo.cli.lightning.ZooCLI`. Recipes
(:mod:`~zoo.cli.recipes`), run folders and resuming (:mod:`~zoo.cli.runs`), checkpoint safety
(:mod:`~zoo.cli.checkpoints`), error reporting (:mod:`~zoo.cli.errors`) and the threads and precision chosen for
the host (:mod:`~zoo.cli.speed`, :mod:`~zoo.cli.precision`) have their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoo.cli import app
from zoo.cli.recipes import Reference, find_recipe, list_recipes

__all__ = ["Reference", "find_recipe", "list_recipes", "main"]


def main(command: str | None = None, argv: Sequence[str] | None = None) -> int:
    """Run ``zoo <command> <argv>`` in this process; returns the exit status (as the console script would).

    Args:
        command: ``fit``, ``test``, ...; None takes it from the first of ``argv``.
        argv: the command's arguments (default: ``sys.argv[1:]``).
    """
    return app.main(argv, command=command)
