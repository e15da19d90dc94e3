"""How images must be prepared for a set of weights: channels, resize, centre crop, normalise.

A :class:`Preprocess` is data (sizes and statistics) beside a set of weights, as torchvision's
``Weights.transforms`` and timm's ``pretrained_cfg`` (``mean``, ``std``, ``input_size``) are; its
:meth:`~Preprocess.transforms` builds the torchvision v2 pipeline that turns a photo of any size and mode
(RGB, RGBA, greyscale, palette) into the normalised float tensor the network takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["FASHIONMNIST_PREPROCESS", "IMAGENET_PREPROCESS", "Preprocess", "ToChannels"]


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for a set of weights (channels, resize, centre crop, normalise).

    Attributes:
        resize: Side the shorter image edge is resized to.
        crop: Side of the centre crop fed to the network.
        mean: Per-channel mean subtracted after scaling pixels to [0, 1]; its length is the number of
            channels the network takes.
        std: Per-channel standard deviation divided by after that.
    """

    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} need one value per channel each")

    @property
    def channels(self) -> int:
        """Channels of the images the pipeline makes: one per value of ``mean``."""
        return len(self.mean)

    def with_channels(self, channels: int) -> Preprocess:
        """The same preparation for a network adapted to ``channels`` input channels.

        The statistics follow the first convolution's adaptation (:func:`zoo.models.adapt.adapt_input_conv`):
        one channel takes their average, more channels repeat them in turn.
        """
        if channels == self.channels:
            return self
        mean: tuple[float, ...]
        std: tuple[float, ...]
        if channels == 1:
            mean, std = (sum(self.mean) / len(self.mean),), (sum(self.std) / len(self.std),)
        else:
            mean = tuple(self.mean[i % self.channels] for i in range(channels))
            std = tuple(self.std[i % self.channels] for i in range(channels))
        return Preprocess(resize=self.resize, crop=self.crop, mean=mean, std=std)

    def transforms(self) -> Callable[[Any], Tensor]:
        """A torchvision v2 pipeline turning one image into the network's input ``(C, crop, crop)``.

        It takes a PIL image of any mode, a ``(H, W, C)`` or ``(H, W)`` NumPy array, or a ``(C, H, W)`` tensor
        (uint8 in 0-255, or float in [0, 1]), of any size. It converts to the weights' channels (greyscale by
        ITU-R 601-2 luma for one, alpha dropped), resizes the shorter edge to :attr:`resize` (antialiased),
        crops the centre :attr:`crop` square and normalises with :attr:`mean` and :attr:`std`.
        """
        from torchvision.transforms import v2

        return v2.Compose(
            [
                ToChannels(self.channels),
                v2.Resize(self.resize, antialias=True),
                v2.CenterCrop(self.crop),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=list(self.mean), std=list(self.std)),
            ]
        )


class ToChannels:
    """Turn an image into a torchvision ``Image`` tensor ``(channels, H, W)``.

    PIL images are converted by PIL (``"L"`` for one channel, ``"RGB"`` otherwise), which also resolves palette
    and other modes; tensors and arrays lose an alpha channel, turn grey by luma, or repeat a grey channel.

    Args:
        channels: Channels of the result.
    """

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, image: Any) -> Tensor:
        from PIL import Image
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        if isinstance(image, Image.Image):
            image = image.convert("L" if self.channels == 1 else "RGB")
        tensor = F.to_image(image)
        have = tensor.shape[-3]
        if have in (2, 4):  # grey or colour with alpha: drop the alpha
            tensor, have = tensor[..., : have - 1, :, :], have - 1
        if have == 3 and self.channels == 1:
            tensor = F.rgb_to_grayscale(tensor)
        elif have == 1 and self.channels > 1:
            tensor = tensor.repeat_interleave(self.channels, dim=-3)
        elif have != self.channels:
            raise ValueError(
                f"cannot turn a {have}-channel image into the {self.channels} channels the weights take"
            )
        return tv_tensors.Image(tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"


IMAGENET_PREPROCESS = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
#: Fashion-MNIST as zoo's recipes feed it: statistics of the 55,000 training images left after the default split
FASHIONMNIST_PREPROCESS = Preprocess(resize=28, crop=28, mean=(0.2859,), std=(0.3529,))
