"""Plain ``nn.Module`` networks, built by name: ``create_model("vgg16", num_classes=10)``.

This package never imports Lightning. Every network has ``forward_features`` (the backbone's output)
and ``forward_head`` (features → logits), with ``forward(x) == forward_head(forward_features(x))``.
Pretrained weights are listed by :func:`list_weights`, described by :func:`get_weights` (categories, metrics,
``transforms()``) and loaded with ``create_model(name, weights=TAG)``, which sets the network's ``pretrained_cfg``.
"""

# Importing the family modules registers their builders and weights.
from zoo.models import (  # noqa: F401
    alexnet,
    autoencoder,
    convnet,
    faster_rcnn,
    fastnet,
    fcn,
    fcn_torchvision,
    googlenet,
    lenet,
    mlp,
    resnet,
    resnet_cifar,
    vgg,
)
from zoo.models.registry import UnknownModelError, create_model, list_models, register_model
from zoo.models.weights import UnknownWeightsError, Weights, WeightsError, get_weights, list_weights

__all__ = [
    "UnknownModelError",
    "UnknownWeightsError",
    "Weights",
    "WeightsError",
    "create_model",
    "get_weights",
    "list_models",
    "list_weights",
    "register_model",
]
