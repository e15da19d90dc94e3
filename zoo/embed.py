"""``python -m zoo.embed``: the same as ``zoo embed`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("embed"))
