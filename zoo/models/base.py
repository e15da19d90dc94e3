"""The shape every classification network here shares: a backbone (``features``) and a head (``classifier``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from zoo.models.weights_record import Weights

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """A network split as ``features`` then ``classifier``, so other tasks can reuse ``forward_features``.

    Subclasses set ``self.features``, ``self.classifier`` and ``self.num_features`` (channels of the feature
    map), and override :meth:`forward_head` when something sits between the two (VGG's average pooling).
    Networks that keep torchvision's attribute names (ResNet, GoogLeNet) name their head in :attr:`head_name`.
    """

    features: nn.Module
    classifier: nn.Module
    num_features: int
    #: the attribute holding the head: the part transfer learning retrains while the rest is frozen
    head_name: ClassVar[str] = "classifier"
    #: the record of the weights it was loaded from (see :func:`zoo.models.get_weights`), or None
    pretrained_cfg: Weights | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output for images ``(B, C, H, W)``: the last feature map, before the head."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from the output of :meth:`forward_features`."""
        return self.classifier(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, C, H, W)``."""
        return self.forward_head(self.forward_features(x))

    @property
    def head(self) -> nn.Module:
        """The head module (``classifier`` or ``fc``)."""
        return getattr(self, self.head_name)

    @property
    def num_classes(self) -> int:
        """Number of logits: the output size of the head's last linear layer."""
        return _last_linear(self.head)[1].out_features

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head's last linear layer by a freshly initialised one with ``num_classes`` outputs.

        The start of transfer learning: a network pretrained on one set of classes learns another, keeping
        everything before that layer. :attr:`pretrained_cfg` then says so (no categories, no metrics).
        """
        if self.pretrained_cfg is not None:
            self.pretrained_cfg = self.pretrained_cfg.with_new_head(num_classes)
        parent, last = _last_linear(self.head)
        fresh = nn.Linear(
            last.in_features, num_classes, bias=last.bias is not None, device=last.weight.device
        )
        if parent is None:
            setattr(self, self.head_name, fresh)
            return
        name = next(n for n, m in parent.named_children() if m is last)
        setattr(parent, name, fresh)


def _last_linear(head: nn.Module) -> tuple[nn.Module | None, nn.Linear]:
    """The last ``nn.Linear`` of a head and the module holding it (``None`` when the head is that layer)."""
    if isinstance(head, nn.Linear):
        return None, head
    found: tuple[nn.Module | None, nn.Linear] | None = None
    for module in head.modules():
        for child in module.children():
            if isinstance(child, nn.Linear):
                found = (module, child)
    if found is None:
        raise ValueError(f"head {type(head).__name__} has no linear layer")
    return found
