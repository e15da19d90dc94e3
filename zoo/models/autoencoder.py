"""A convolutional autoencoder: strided convolutions down to an embedding vector, transposed convolutions back.

* J. Masci, U. Meier, D. Cireşan and J. Schmidhuber, "Stacked Convolutional Auto-Encoders for Hierarchical
  Feature Extraction", ICANN 2011: an encoder of convolutions trained, with a decoder that mirrors it, to
  reconstruct its input, so that its features serve other tasks without labels.
* F. Chollet, *Deep Learning with Python*, 2nd ed., Manning, 2021, section 12.4 (the image VAE): the encoder
  used here, 3x3 convolutions of 32 then 64 filters with stride 2 and a dense layer to the code, and stride-2
  ``Conv2DTranspose`` layers to decode. Here the code is a plain vector (no sampling), and the decoder mirrors
  the encoder layer for layer.

``conv_autoencoder`` on 28x28x1 (Fashion-MNIST) with a 64-dimensional embedding has 442,177 parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.models.registry import register_model
from zoo.models.weights import load_weights, weights_for

__all__ = ["ConvAutoencoder", "conv_autoencoder"]

# Output channels of the stride-2 3x3 convolutions of the encoder; the decoder runs them backwards.
cfgs: dict[str, list[int]] = {
    "conv_autoencoder": [32, 64],
}


class ConvAutoencoder(nn.Module):
    """Encoder: stride-2 convolutions, ``Flatten``, ``Linear`` to the embedding. Decoder: the mirror image.

    With ``cfg = [32, 64]`` and 28x28 inputs::

        encoder  (B, C, 28, 28) → Conv 32, s2 → ReLU → (B, 32, 14, 14) → Conv 64, s2 → ReLU → (B, 64, 7, 7)
                 → Flatten → Linear → (B, D)
        decoder  (B, D) → Linear → ReLU → (B, 64, 7, 7) → ConvT 32, s2 → ReLU → (B, 32, 14, 14)
                 → ConvT C, s2 → (B, C, 28, 28) logits

    32x32 inputs give 8x8 and 16x16 maps on the way. Each stride-2 step halves the side, so ``image_size`` must
    be divisible by ``2 ** len(cfg)``.

    The encoder takes images as the DataModules give them (normalised); the decoder returns *logits* of pixel
    intensities in 0..1: ``torch.sigmoid(decode(z))`` is the reconstructed image, and the logits go straight
    into ``binary_cross_entropy_with_logits``.

    Args:
        cfg: Output channels of the encoder's convolutions, e.g. ``cfgs["conv_autoencoder"]``.
        in_channels: Channels ``C`` of the images.
        embedding_dim: Size ``D`` of the embedding vector.
        image_size: Side of the square images.

    Shape:
        ``encode``: ``(B, C, S, S)`` → ``(B, D)``; ``decode``: ``(B, D)`` → ``(B, C, S, S)``;
        ``forward``: ``(B, C, S, S)`` → ``(B, C, S, S)`` (logits).
    """

    def __init__(self, cfg: list[int], *, in_channels: int, embedding_dim: int, image_size: int = 28) -> None:
        super().__init__()
        steps = 2 ** len(cfg)
        if image_size < steps or image_size % steps:
            raise ValueError(f"image_size {image_size} must be a multiple of {steps} (one halving per layer)")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
        side = image_size // steps
        self.num_features = self.embedding_dim = embedding_dim
        down: list[nn.Module] = []
        channels = in_channels
        for width in cfg:
            down += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.encoder = nn.Sequential(*down, nn.Flatten(1), nn.Linear(channels * side * side, embedding_dim))
        up: list[nn.Module] = [
            nn.Linear(embedding_dim, channels * side * side),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (channels, side, side)),
        ]
        widths = [*reversed(cfg[:-1]), in_channels]
        for index, width in enumerate(widths):
            # output_padding=1 makes each step exactly double the side: 7 → 14 → 28
            up.append(nn.ConvTranspose2d(channels, width, 3, stride=2, padding=1, output_padding=1))
            if index < len(widths) - 1:  # the last layer gives logits
                up.append(nn.ReLU(inplace=True))
            channels = width
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings ``(B, D)`` of images ``(B, C, S, S)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(B, C, S, S)`` of embeddings ``(B, D)``; ``torch.sigmoid`` of them is the image."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(B, C, S, S)`` of the reconstructions of images ``(B, C, S, S)``."""
        return self.decode(self.encode(x))

    # The zoo's backbone interface (zoo.models.base.Backbone): the encoder's output is the feature vector.
    forward_features = encode
    forward_head = decode


@register_model
def conv_autoencoder(
    *,
    in_channels: int = 1,
    weights: str | None = None,
    embedding_dim: int = 64,
    image_size: int = 28,
    **kwargs: Any,
) -> ConvAutoencoder:
    """Convolutional autoencoder (32/64 filters) for 28x28 or 32x32 images; see :class:`ConvAutoencoder`.

    Pretrained weights fix ``embedding_dim`` as they fix ``num_classes`` for a classifier: it is the size of the
    network's output vector, and is checked as such.
    """
    pretrained, kwargs = weights_for(
        "conv_autoencoder",
        weights,
        num_classes=embedding_dim,
        in_channels=in_channels,
        kwargs={"image_size": image_size, **kwargs},
    )
    network = ConvAutoencoder(
        cfgs["conv_autoencoder"],
        in_channels=in_channels,
        embedding_dim=embedding_dim,
        **kwargs,
    )
    return load_weights(network, pretrained)
