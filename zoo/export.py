"""``python -m zoo.export``: the same as ``zoo export`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("export"))
