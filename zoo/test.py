"""``python -m zoo.test``: the same as ``zoo test`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("test"))
