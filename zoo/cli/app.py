"""``zoo COMMAND [ARGS]`` (and ``python -m zoo``): the table of commands, each a module with a ``main``."""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
from collections.abc import Sequence

from zoo.cli.arguments import answer_early

__all__ = ["COMMANDS", "main"]

#: command -> what it does; each is the module ``zoo.cli.<command>`` with ``main(argv) -> int``
COMMANDS: dict[str, str] = {
    "fit": "train a recipe in a run folder of its own, then test its best checkpoint",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split",
    "predict": "write a checkpoint's predictions",
    "list": "the recipes, and what each reproduces",
    "summary": "a network's layers, output shapes, parameters and receptive fields",
    "export": "a trained network's weights as a file to ship",
    "visualize": "feature maps, filters, confusion matrix, saliency, activation maximisation",
    "stylize": "paint an image in the style of another",
    "embed": "an autoencoder's embeddings of a split",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return "usage: zoo COMMAND [--help] [ARGS]\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None, command: str | None = None) -> int:
    """Run a zoo command; returns its exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``); the first is the command unless ``command`` is given.
        command: the command, when the caller already knows it (``python -m zoo.fit``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if command is None:
        if not arguments or arguments[0] in ("-h", "--help"):
            print(_usage())
            return 0 if arguments else 2
        command, arguments = arguments[0], arguments[1:]
    if command not in COMMANDS:
        print(
            f"zoo: error: unknown command '{command}'; the commands are {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    # Python's last garbage collection at exit walks every object torch, Lightning and W&B left (about half a
    # million): two seconds after a command's last line. Frozen, they are left to the operating system, as Python
    # allows (finalizers of objects alive at exit are not promised), and the process ends in a fraction of a second.
    # Registered before the command runs, it runs after the command's own exit handlers (W&B's finish among them).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    answered = answer_early(command, arguments)
    if answered is not None:
        return answered
    module = importlib.import_module(f"zoo.cli.{command}")
    status: int = module.main(arguments)
    return status
