"""``python -m zoo.fit``: the same as ``zoo fit`` (kept for the commands written before ``zoo``)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("fit"))
