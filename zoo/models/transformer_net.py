"""Johnson et al.'s image transformation network for fast style transfer: :class:`TransformerNet`.

Reference: J. Johnson, A. Alahi and L. Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016, with instance norm in place of batch norm (D. Ulyanov, A. Vedaldi and V. Lempitsky,
"Instance Normalization: The Missing Ingredient for Fast Stylization", arXiv:1607.08022, 2016), as in
pytorch/examples' ``fast_neural_style``. It is trained with the perceptual loss of :mod:`zoo.models.style`.

It returns images, not logits, so it is not in the model registry.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TransformerNet"]


class _Conv(nn.Sequential):
    """Reflection padding, a convolution, then instance norm and ReLU unless ``last``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, last: bool = False) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if not last:
            layers += [nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class _Upsample(nn.Sequential):
    """Nearest-neighbour upsampling by 2, then a convolution block (no checkerboard, unlike a strided deconv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), _Conv(cin, cout, 3))


class _Residual(nn.Module):
    """Two 3x3 convolution blocks (the second without ReLU) plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _Conv(channels, channels, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network, with instance norm (Ulyanov et al. 2016).

    A 9x9 convolution (32), two stride-2 3x3 convolutions (64, 128), five residual blocks (128), two
    upsample-and-convolve blocks (64, 32) and a 9x9 convolution back to RGB; reflection padding throughout.
    1,679,235 parameters.

    Args:
        channels: image channels in and out.
        width: channels of the first convolution (doubled by each downsampling).
        num_residual: residual blocks at the lowest resolution.

    Shape:
        ``(B, channels, H, W)`` → ``(B, channels, H, W)``, any ``H, W`` (padded by reflection to a multiple of 4
        inside and cropped back). Inputs are images in 0..1; outputs are unconstrained (clamp to show them).
    """

    def __init__(self, *, channels: int = 3, width: int = 32, num_residual: int = 5) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            _Conv(channels, width, 9),
            _Conv(width, 2 * width, 3, stride=2),
            _Conv(2 * width, 4 * width, 3, stride=2),
        )
        self.residual = nn.Sequential(*(_Residual(4 * width) for _ in range(num_residual)))
        self.decoder = nn.Sequential(
            _Upsample(4 * width, 2 * width),
            _Upsample(2 * width, width),
            _Conv(width, channels, 9, last=True),
        )

    def forward(self, images: Tensor) -> Tensor:
        """Stylised images with the input's shape."""
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4
        x = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else images
        y = self.decoder(self.residual(self.encoder(x)))
        return y[..., :height, :width]
