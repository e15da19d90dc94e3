"""``python -m zoo.visualize``: the same as ``zoo visualize`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("visualize"))
