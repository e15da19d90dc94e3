"""``python -m zoo.predict --recipe NAME --ckpt_path PATH [--output FILE]``: write predictions (a CSV of classes, stylised PNGs, embeddings: whatever the task writes)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("predict"))
