"""``zoo list``: the shipped recipes, one a line, with what each trains and the result it reproduces;
``zoo list --recipe NAME`` prints one recipe whole."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser
from zoo.cli.recipes import describe_recipes, find_recipe, read_recipe

__all__ = ["main"]


def _run(argv: Sequence[str]) -> None:
    parser = CommandParser(
        "zoo list",
        usage="zoo list [--recipe NAME|PATH]",
        description="The shipped recipes; train one with zoo fit --recipe NAME.",
    )
    parser.add_argument("--recipe", help="print this recipe's file whole")
    args = parser.parse_args(argv)
    if args.recipe is None:
        print("\n".join(describe_recipes()))
        return
    path = find_recipe(args.recipe)
    read_recipe(path)
    print(path.read_text(), end="")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo list``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return answer_bad_input("zoo list", lambda: _run(arguments))
