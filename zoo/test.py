"""``python -m zoo.test --recipe NAME --ckpt_path PATH``: evaluate a checkpoint on the test split."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("test"))
