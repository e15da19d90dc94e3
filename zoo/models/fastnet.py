"""A small, fast convnet for quick, strong baselines on small images, after the networks of airbench.

airbench (K. Jordan, *94% on CIFAR-10 in 3.29 seconds on a single GPU*, 2024, github.com/KellerJordan/cifar10-airbench)
trains a VGG-like network of a few wide 3x3 convolutions, each followed by a 2x2 max-pool, batch norm and GELU,
ending in a global max-pool and one linear layer. ``fastnet`` keeps that order, and pools right after each stage's
last convolution, so that the next, wider convolution runs at half the size, which is what makes it fast on a CPU:
at 28x28 its default widths cost a third of ResNet-20's multiply-adds (10.1M against 30.8M a 28x28 image), and the
norm and GELU after the 28x28 stem run on 14x14 maps.

The rest of airbench's speed comes from the training recipe, not the network (``recipes/fast_fashionmnist.yaml``):
the whole data set as one tensor with batched augmentation, label smoothing, an exponential moving average of the
weights, flip test-time augmentation and a one-cycle schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from zoo.models.base import Backbone
from zoo.models.registry import register_model

__all__ = ["FastNet", "fastnet"]


def _conv_block(in_channels: int, out_channels: int, *, pool: bool) -> list[nn.Module]:
    """A 3x3 convolution (no bias: batch norm follows), a 2x2 max-pool if ``pool``, batch norm and GELU."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        *([nn.MaxPool2d(2)] if pool else []),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    ]


class FastNet(Backbone):
    """A stem convolution, then per stage ``depth`` convolutions, each stage at half the size of the one before; linear.

    Every convolution is followed by batch norm and GELU; the last convolution before a new stage is followed by a
    2x2 max-pool first, ahead of its norm and GELU, in airbench's order (convolution, pool, norm, activation). The
    convolutions run at the same sizes as with the pool after the GELU, but the norm and GELU of each stage's end run
    on a quarter of the pixels (``benchmarks/fastnet_order.py`` measures the two orders). A global max-pool and a
    linear layer make the head.

    Args:
        widths: output channels of the stem (first) and of each later stage; ``len(widths) - 1`` pools.
        depth: convolutions per stage after the stem (the stem has one).
        num_classes: number of output logits.
        in_channels: channels of the input images.

    Shape:
        Input ``(B, in_channels, H, W)`` with ``H, W >= 2 ** (len(widths) - 1)``; ``forward_features`` gives
        ``(B, widths[-1], H / 2**(len(widths) - 1), ...)`` (sides rounded down at each pool), ``forward`` logits
        ``(B, num_classes)``.
    """

    def __init__(
        self, widths: Sequence[int], *, depth: int = 1, num_classes: int = 10, in_channels: int = 1
    ) -> None:
        super().__init__()
        if not widths or min(widths) < 1 or depth < 1:
            raise ValueError(
                f"need at least one positive width and depth >= 1, got widths={widths}, depth={depth}"
            )
        stages = [[(in_channels, widths[0])]]
        stages += [
            [(previous, width)] + [(width, width)] * (depth - 1) for previous, width in pairwise(widths)
        ]
        layers: list[nn.Module] = []
        for index, stage in enumerate(stages):
            for position, (channels_in, channels_out) in enumerate(stage):
                ends_stage = position == len(stage) - 1 and index < len(stages) - 1
                layers += _conv_block(channels_in, channels_out, pool=ends_stage)
        self.features = nn.Sequential(*layers)
        self.num_features = widths[-1]
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward_head(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``: the global max over each feature map, then the linear layer."""
        return self.classifier(self.pool(x).flatten(1))


@register_model
def fastnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    weights: str | None = None,
    widths: Sequence[int] = (32, 64, 128, 256),
    depth: int = 1,
) -> FastNet:
    """The fast convnet: 32, 64, 128, 256 channels at 28, 14, 7 and 3 pixels for Fashion-MNIST (390,890 parameters).

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images.
        weights: no pretrained weights exist for this network; must be None.
        widths: channels of the stem and each later stage.
        depth: convolutions per stage after the stem.
    """
    if weights is not None:
        raise ValueError(f"fastnet has no pretrained weights (got weights={weights!r})")
    return FastNet(widths, depth=depth, num_classes=num_classes, in_channels=in_channels)
