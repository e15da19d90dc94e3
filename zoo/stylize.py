"""``python -m zoo.stylize``: the same as ``zoo stylize`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("stylize"))
