"""Neural style transfer: the VGG loss network and the losses it computes.

References:

* L. A. Gatys, A. S. Ecker and M. Bethge, "A Neural Algorithm of Artistic Style", arXiv:1508.06576, 2015:
  optimise an image so that its VGG-19 activations match a content image's (``conv4_2``) and the Gram matrices
  of its activations match a style image's (``conv1_1`` ... ``conv5_1``, equal weights).
* J. Johnson, A. Alahi and L. Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution",
  ECCV 2016: train a feed-forward :class:`~zoo.models.transformer_net.TransformerNet` (in its own module,
  importable from here too) with the same kind of loss, computed by VGG-16 (style at ``relu1_2``, ``relu2_2``,
  ``relu3_3``, ``relu4_3``, content at ``relu2_2``).

Layer names follow the papers: ``conv<block>_<n>`` is the output of a convolution (before its ReLU, as in the
PyTorch neural-style tutorial), ``relu<block>_<n>`` the output of the ReLU after it, ``pool<block>`` the
max-pool ending a block. Images everywhere here are RGB in 0..1, ``(B, 3, H, W)``; the loss network subtracts
ImageNet's mean and divides by its standard deviation itself.

The loss network is not a classifier and the transformer returns images, not logits, so neither is in the
model registry (whose every entry has ``forward_features`` and a head); the loss network is *built* from the
registered ``vgg16``/``vgg19`` and their weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.registry import create_model
from zoo.models.transformer_net import TransformerNet
from zoo.models.vgg import VGG, cfgs
from zoo.models.weights import IMAGENET_PREPROCESS
from zoo.models.weights_files import WeightsError

__all__ = [
    "GATYS_CONTENT_LAYERS",
    "GATYS_STYLE_LAYERS",
    "JOHNSON_CONTENT_LAYERS",
    "JOHNSON_STYLE_LAYERS",
    "LossArch",
    "Losses",
    "PerceptualLoss",
    "TransformerNet",
    "VGGLossNetwork",
    "content_loss",
    "gram_matrix",
    "layer_names",
    "loss_network",
    "style_loss",
    "total_variation",
]

LossArch = Literal["vgg16", "vgg19"]

GATYS_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
GATYS_CONTENT_LAYERS = ("conv4_2",)
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
JOHNSON_CONTENT_LAYERS = ("relu2_2",)


# ---- the losses ----------------------------------------------------------------------------------------------


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrices of feature maps, normalised by their size.

    Args:
        features: activations ``(B, C, H, W)``.

    Returns:
        ``(B, C, C)``: ``G[b, i, j] = sum_hw F[b, i, hw] F[b, j, hw] / (C H W)``, computed in float32.
    """
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference between activations ``(B, C, H, W)`` and their targets (same shape, or batch 1)."""
    return F.mse_loss(features.float(), target.float().expand_as(features))


def style_loss(features: Mapping[str, Tensor], target_grams: Mapping[str, Tensor]) -> Tensor:
    """Sum over layers of the mean squared difference between Gram matrices.

    Args:
        features: activations ``(B, C, H, W)`` by layer name.
        target_grams: the style image's Gram matrices ``(1, C, C)`` (or ``(B, C, C)``) for the same layers.
    """
    terms = []
    for name, target in target_grams.items():
        gram = gram_matrix(features[name])
        terms.append(F.mse_loss(gram, target.float().expand_as(gram)))
    return torch.stack(terms).sum()


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic total variation: mean absolute difference between vertical plus horizontal neighbours.

    Args:
        images: ``(B, C, H, W)``.
    """
    vertical = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean()
    horizontal = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean()
    return vertical + horizontal


# ---- the loss network ----------------------------------------------------------------------------------------


def layer_names(arch: LossArch) -> list[str]:
    """Names of the layers of VGG-16 or VGG-19's ``features``, in order: ``conv1_1``, ``relu1_1``, ..., ``pool5``."""
    names, block, index = [], 1, 0
    for v in cfgs[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            index += 1
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
    return names


class VGGLossNetwork(nn.Module):
    """A frozen VGG feature extractor that returns the activations of named layers.

    It keeps VGG's layers up to the last one asked for, with out-of-place ReLUs (an in-place ReLU would change a
    convolution's output after it was recorded). It is always in eval mode and never needs gradients for its
    weights; gradients flow through it to its input.

    Args:
        vgg: a VGG-16 or VGG-19 (no batch norm) from :func:`zoo.models.create_model`; only ``features`` is kept.
        arch: ``"vgg16"`` or ``"vgg19"``, naming its layers.
        style_layers: layers whose Gram matrices make the style loss.
        content_layers: layers whose activations make the content loss.

    Shape:
        Input: RGB images in 0..1, ``(B, 3, H, W)`` with ``H, W >= 16``. Output: a dict from layer name to
        activations ``(B, C, H', W')`` for every style and content layer.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, vgg: VGG, arch: LossArch, *, style_layers: Sequence[str], content_layers: Sequence[str]
    ) -> None:
        super().__init__()
        names = layer_names(arch)
        wanted = [*style_layers, *content_layers]
        unknown = [name for name in wanted if name not in names]
        if unknown or not wanted:
            raise ValueError(
                f"{arch} has no layer {', '.join(unknown) or '(none asked for)'}; its layers are {', '.join(names)}"
            )
        self.arch = arch
        self.style_layers, self.content_layers = tuple(style_layers), tuple(content_layers)
        last = max(names.index(name) for name in wanted)
        layers = list(vgg.features.children())
        if len(layers) != len(names):
            raise ValueError(f"expected {arch} without batch norm ({len(names)} layers), got {len(layers)}")
        self.body = nn.Sequential(
            OrderedDict(
                (name, nn.ReLU() if isinstance(layer, nn.ReLU) else layer)
                for name, layer in zip(names[: last + 1], layers[: last + 1], strict=True)
            )
        )
        mean, std = IMAGENET_PREPROCESS.mean, IMAGENET_PREPROCESS.std
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGLossNetwork:
        """Stay in eval mode whatever a caller asks: the loss network is frozen."""
        return super().train(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations of the style and content layers for images ``(B, 3, H, W)`` in 0..1."""
        wanted = {*self.style_layers, *self.content_layers}
        x = (images - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, layer in self.body.named_children():
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out


def loss_network(
    arch: LossArch = "vgg19",
    *,
    weights: str | Path | None = "imagenet",
    allow_random: bool = False,
    style_layers: Sequence[str] | None = None,
    content_layers: Sequence[str] | None = None,
) -> VGGLossNetwork:
    """Build the loss network from the registered ``vgg16``/``vgg19`` and trained weights.

    Style transfer with a randomly initialised VGG runs without error and produces noise, so weights are
    required unless ``allow_random`` says otherwise (tests).

    Args:
        arch: ``"vgg19"`` (Gatys et al.) or ``"vgg16"`` (Johnson et al.).
        weights: ``"imagenet"`` for torchvision's ImageNet weights (``create_model(arch, weights="imagenet")``:
            from torch's hub cache, downloaded once), or the path of a local file holding a torchvision
            ``vgg16``/``vgg19`` state dict (read with ``weights_only=True``; only ``features.*`` is used), or
            None for random weights (needs ``allow_random``).
        allow_random: accept ``weights=None``; the results mean nothing.
        style_layers: defaults to Gatys' layers for VGG-19 and Johnson's for VGG-16.
        content_layers: defaults to ``conv4_2`` for VGG-19 and ``relu2_2`` for VGG-16.

    Returns:
        The frozen :class:`VGGLossNetwork`, on the CPU.

    Raises:
        WeightsError: the weights cannot be had or read, do not fit, or are None without ``allow_random``.
        ValueError: an unknown architecture or layer name.
    """
    if arch not in ("vgg16", "vgg19"):
        raise ValueError(f"the loss network is 'vgg16' or 'vgg19', not '{arch}'")
    gatys = arch == "vgg19"
    style = (
        style_layers if style_layers is not None else GATYS_STYLE_LAYERS if gatys else JOHNSON_STYLE_LAYERS
    )
    content = (
        content_layers
        if content_layers is not None
        else GATYS_CONTENT_LAYERS
        if gatys
        else JOHNSON_CONTENT_LAYERS
    )
    if weights == "imagenet":
        try:
            vgg = cast(VGG, create_model(arch, weights="imagenet"))
        except WeightsError as error:
            raise WeightsError(f"no ImageNet weights for the {arch} loss network: {error}") from None
    elif weights is None:
        if not allow_random:
            raise WeightsError(
                f"the {arch} loss network has no weights: give 'imagenet' or a torchvision {arch} state dict file "
                "(a random network gives meaningless images)"
            )
        vgg = cast(VGG, create_model(arch, num_classes=1, head="cifar"))  # only features count: a small head
    else:
        vgg = cast(VGG, create_model(arch, num_classes=1, head="cifar"))
        _load_features(vgg, Path(weights), arch)
    return VGGLossNetwork(vgg, arch, style_layers=style, content_layers=content)


def _load_features(vgg: VGG, path: Path, arch: str) -> None:
    """Load the ``features.*`` tensors of a torchvision VGG state dict file into ``vgg`` (keys match ours)."""
    if not path.is_file():
        raise WeightsError(f"loss network weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types; all mean "not a plain state dict"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"loss network weights file {path} cannot be read safely: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"loss network weights file {path} is not a state dict of tensors")
    features = {key.removeprefix("features."): v for key, v in state.items() if key.startswith("features.")}
    try:
        vgg.features.load_state_dict(features)
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        first = " ".join(lines[1].split()) if len(lines) > 1 else lines[0]
        first = first if len(first) <= 160 else first[:157] + "..."
        raise WeightsError(
            f"loss network weights file {path} is not a torchvision {arch} state dict: {first}"
        ) from None


# ---- the loss ------------------------------------------------------------------------------------------------


class Losses(NamedTuple):
    """The weighted total and its unweighted terms, each a scalar tensor."""

    total: Tensor
    content: Tensor
    style: Tensor
    tv: Tensor


class PerceptualLoss(nn.Module):
    """Content, style and total-variation loss against a fixed style image.

    ``total = content_weight * content + style_weight * style + tv_weight * tv``, with the content term
    summed over the network's content layers and the style term over its style layers (:func:`style_loss`).

    Args:
        network: the frozen loss network.
        style: the style image ``(1, 3, H, W)`` in 0..1; its Gram matrices are computed once.
        content_weight: weight of the content loss.
        style_weight: weight of the style loss.
        tv_weight: weight of the total variation of the output (0: none).
    """

    def __init__(
        self,
        network: VGGLossNetwork,
        style: Tensor,
        *,
        content_weight: float,
        style_weight: float,
        tv_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        with torch.no_grad():
            features = network(style.to(network.mean.device))
        for name in network.style_layers:
            self.register_buffer(f"gram_{name}", gram_matrix(features[name]), persistent=False)

    @property
    def style_grams(self) -> dict[str, Tensor]:
        """The style image's Gram matrices ``(1, C, C)`` by layer name."""
        return {name: getattr(self, f"gram_{name}") for name in self.network.style_layers}

    def content_targets(self, content: Tensor) -> dict[str, Tensor]:
        """Activations of the content layers for content images ``(B, 3, H, W)``, without gradients."""
        with torch.no_grad():
            features = self.network(content)
        return {name: features[name] for name in self.network.content_layers}

    def forward(self, images: Tensor, content_targets: Mapping[str, Tensor]) -> Losses:
        """The losses of images ``(B, 3, H, W)`` given the targets from :meth:`content_targets`."""
        features = self.network(images)
        content = torch.stack([content_loss(features[k], v) for k, v in content_targets.items()]).sum()
        style = style_loss(features, self.style_grams)
        tv = total_variation(images) if self.tv_weight else images.new_zeros(())
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return Losses(total, content, style, tv)
