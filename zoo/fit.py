"""``python -m zoo.fit --recipe NAME [overrides]``: train a recipe, then test its best checkpoint."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main("fit"))
