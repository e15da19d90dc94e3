"""``python -m zoo.predict --recipe NAME --ckpt_path PATH [--output FILE]``: write predictions to a CSV file."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("predict"))
