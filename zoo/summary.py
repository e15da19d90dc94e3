"""``python -m zoo.summary``: the same as ``zoo summary`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("summary"))
