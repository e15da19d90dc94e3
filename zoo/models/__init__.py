"""Plain ``nn.Module`` networks, built by name: ``create_model("vgg16", num_classes=10)``.

This package never imports Lightning. Every network has ``forward_features`` (the backbone's output)
and ``forward_head`` (features → logits), with ``forward(x) == forward_head(forward_features(x))``.
"""

# Importing the family modules registers their builders.
from zoo.models import convnet, lenet, mlp, vgg  # noqa: F401
from zoo.models.registry import UnknownModelError, create_model, list_models, register_model

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]
