"""The shape every classification network here shares: a backbone (``features``) and a head (``classifier``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """A network split as ``features`` then ``classifier``, so other tasks can reuse ``forward_features``.

    Subclasses set ``self.features``, ``self.classifier`` and ``self.num_features`` (channels of the feature
    map), and override :meth:`forward_head` when something sits between the two (VGG's average pooling).
    """

    features: nn.Module
    classifier: nn.Module
    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output for images ``(B, C, H, W)``: the last feature map, before the head."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the output of :meth:`forward_features`."""
        return self.classifier(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        return self.forward_head(self.forward_features(x))
