"""``python -m zoo.predict``: the same as ``zoo predict`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("predict"))
