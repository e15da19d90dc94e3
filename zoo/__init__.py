"""zoo: the classic convolutional networks as PyTorch Lightning modules, with recipes that reproduce them."""

from zoo.errors import ZooError

__all__ = ["ZooError", "__version__"]
__version__ = "0.1.0"
