"""The layers both kinds of FCN are built from: the bilinear deconvolution and the input normalisation.

Reference: J. Long, E. Shelhamer and T. Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (arXiv:1411.4038): upsampling by transposed convolutions initialised to bilinear interpolation (their
``upsample_filt``). Our FCN-32s/16s/8s (:mod:`zoo.models.fcn`) and torchvision's FCN
(:mod:`zoo.models.fcn_torchvision`) both take images in 0..1 and normalise them themselves
(:class:`NormalisedInput`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.weights import IMAGENET_PREPROCESS

__all__ = ["BilinearDeconv", "NormalisedInput", "bilinear_kernel"]


def bilinear_kernel(factor: int) -> Tensor:
    """The ``(2 * factor, 2 * factor)`` bilinear interpolation kernel of Long et al.'s ``upsample_filt``."""
    size = 2 * factor
    centre = factor - 0.5  # an even-sized kernel: the centre falls between two taps
    taps = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    return taps[:, None] * taps[None, :]


def _normalisation(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std for RGB input; for other channel counts a neutral 0.5 and 0.25 per channel."""
    if in_channels == 3:
        return IMAGENET_PREPROCESS.mean, IMAGENET_PREPROCESS.std
    return (0.5,) * in_channels, (0.25,) * in_channels


class NormalisedInput(nn.Module):
    """A network that standardises its images in 0..1 itself: ImageNet's mean and std for RGB images.

    The mean and std are buffers, not saved: they follow from ``in_channels``. Subclasses call
    :meth:`set_normalisation` in their constructor and :meth:`normalise` in ``forward``.
    """

    mean: Tensor
    std: Tensor

    def set_normalisation(self, in_channels: int) -> None:
        """Register the mean and std for images of ``in_channels`` channels."""
        mean, std = _normalisation(in_channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """Images in 0..1 to the standardised input the backbone's weights expect."""
        return (images - self.mean) / self.std


class BilinearDeconv(nn.Module):
    """Upsampling by ``factor`` with a transposed convolution that starts as bilinear interpolation.

    The kernel is ``2 * factor`` wide with stride ``factor``, one bilinear filter per channel on the diagonal
    (Long et al.), no bias. The input's border is replicated by one pixel and the output cropped, so at its
    start the layer equals ``F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)``
    everywhere, borders included.

    Args:
        channels: channels in and out (the classes).
        factor: the upsampling factor, even.
        trainable: learn the kernel (the 2x skips of FCN-16s/8s) or keep it bilinear (the final upsampling).

    Shape:
        ``(B, channels, h, w)`` to ``(B, channels, factor * h, factor * w)``.
    """

    def __init__(self, channels: int, factor: int, *, trainable: bool = True) -> None:
        super().__init__()
        if factor < 2 or factor % 2:
            raise ValueError(f"factor must be even and at least 2, got {factor}")
        self.factor = factor
        self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
        self.reset_parameters()
        self.deconv.weight.requires_grad_(trainable)

    def reset_parameters(self) -> None:
        """Set the kernel to bilinear interpolation of each channel on its own."""
        with torch.no_grad():
            self.deconv.weight.zero_()
            kernel = bilinear_kernel(self.factor).to(self.deconv.weight)
            for channel in range(self.deconv.weight.shape[0]):
                self.deconv.weight[channel, channel] = kernel

    def forward(self, x: Tensor) -> Tensor:
        """The map upsampled ``factor`` times."""
        height, width = x.shape[-2:]
        # with the border replicated, output pixel o reads input (o + 0.5) / factor - 0.5, as interpolate does
        y = self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        start = 3 * self.factor // 2
        return y[..., start : start + self.factor * height, start : start + self.factor * width]
