"""Autoencoders: reconstruct the input through an embedding vector; no labels needed.

The network's encoder takes the images as the DataModule gives them (normalised); the reconstruction target is
the same images as pixels in 0..1, recovered with the DataModule's own ``mean`` and ``std`` (kept in the
checkpoint). Loss, metrics and figures are all in those pixel units, so they mean the same for every dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, cast

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio

from zoo.data.base import TaskKind
from zoo.errors import DataError, ZooError
from zoo.figures.drawing import IMAGE_TILE, captioned_grid, to_tiles
from zoo.figures.saving import save_figure, should_draw
from zoo.tasks.base import BaseTask, Stage, build_network, datamodule_of
from zoo.tasks.data import input_stats
from zoo.tasks.embeddings import write_embeddings
from zoo.tasks.outputs import AutoencoderOutputs

__all__ = ["Autoencoder", "AutoencoderTask", "reconstruction_figure"]

Loss = Literal["mse", "bce"]

#: reconstruction losses, from the decoder's pixel logits and the target pixels in 0..1
_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": lambda logits, target: F.mse_loss(torch.sigmoid(logits), target),
    "bce": F.binary_cross_entropy_with_logits,
}


class Autoencoder(Protocol):
    """What the task needs of a network (:class:`zoo.models.autoencoder.ConvAutoencoder` has it)."""

    def __call__(self, x: Tensor) -> Tensor: ...  # pixel logits (B, C, H, W) of images (B, C, H, W)
    def encode(self, x: Tensor) -> Tensor: ...  # embeddings (B, D) of images (B, C, H, W)
    def decode(self, z: Tensor) -> Tensor: ...  # pixel logits (B, C, H, W) of embeddings (B, D)


class AutoencoderTask(BaseTask):
    """Train an autoencoder (a registered network with ``encode`` and ``decode``) to reconstruct images.

    Batches are ``(images, labels)`` as every zoo DataModule gives them; the labels are ignored, and the task has
    no ``num_classes``, so it trains on any of them.

    Args:
        model: a registered autoencoder, e.g. ``conv_autoencoder``.
        in_channels: channels of the images (1 for the MNIST family, 3 for CIFAR); must match the data.
        embedding_dim: size of the embedding vector.
        weights: a pretrained weights tag for the network, or None to start from scratch.
        model_kwargs: further keyword arguments for the network's builder (``image_size: 32`` for CIFAR).
        loss: ``mse`` (mean squared error of the pixels) or ``bce`` (binary cross-entropy of each pixel's
            intensity, as in Chollet's Keras autoencoders).
        reconstructions: images in the reconstruction figure (0: no figure).

    Metrics: ``loss``, ``mse`` (mean squared error of pixels in 0..1) and ``psnr`` (peak signal-to-noise ratio,
    in dB, of the epoch's mean squared error). The best checkpoint has the lowest ``val_loss``.

    Figures: at the end of every validation epoch (not the sanity check) and of the test,
    ``figures/<when>-val-reconstructions.png`` (``test-``) in the run folder, also sent to W&B or TensorBoard as
    ``val/reconstructions``: the first ``reconstructions`` images of the split's first batch (the same images
    every epoch) over their reconstructions, each captioned with its PSNR. Validation and test steps return
    :class:`~zoo.tasks.outputs.AutoencoderOutputs`.
    """

    kind: ClassVar[TaskKind] = "autoencoder"
    #: ``python -m zoo.predict`` writes the embeddings as NumPy arrays by default (``.pt`` when asked)
    predictions_suffix: ClassVar[str] = ".npz"
    net: Autoencoder
    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(
        self,
        model: str = "conv_autoencoder",
        *,
        in_channels: int = 1,
        embedding_dim: int = 64,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        loss: Loss = "mse",
        reconstructions: int = 8,
    ) -> None:
        self.model_name, self.in_channels, self.embedding_dim = model, in_channels, embedding_dim
        self.weights, self.model_kwargs = weights, dict(model_kwargs or {})
        self.loss, self.reconstructions = loss, reconstructions
        self._shown: tuple[Tensor, Tensor, Tensor] | None = None  # (pixels, reconstructions, labels)
        super().__init__()
        # How the data normalised its images (0..1 units); identity until setup reads the DataModule's.
        self.register_buffer("pixel_mean", torch.zeros(in_channels))
        self.register_buffer("pixel_std", torch.ones(in_channels))

    def configure_models(self) -> None:
        """Build the network from the registry."""
        net = build_network(
            self.model_name,
            in_channels=self.in_channels,
            weights=self.weights,
            embedding_dim=self.embedding_dim,
            **self.model_kwargs,
        )
        self.net = cast(Autoencoder, net)

    def configure_losses(self) -> None:
        """Pick the reconstruction loss."""
        if self.loss not in _LOSSES:
            raise ZooError(f"loss must be one of {', '.join(_LOSSES)}, not '{self.loss}'")
        self.criterion = _LOSSES[self.loss]

    def configure_metrics(self) -> MetricCollection:
        """Mean squared error and PSNR of the pixels, in 0..1."""
        return MetricCollection({"mse": MeanSquaredError(), "psnr": PeakSignalNoiseRatio(data_range=1.0)})

    # ---- the network ---------------------------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Pixel logits ``(B, C, H, W)`` of the reconstructions of images ``(B, C, H, W)``."""
        return self.net(images)

    def encode(self, images: Tensor) -> Tensor:
        """Embeddings ``(B, embedding_dim)`` of images ``(B, C, H, W)`` (normalised as the data gives them)."""
        return self.net.encode(images)

    def pixels(self, images: Tensor) -> Tensor:
        """Normalised images ``(B, C, H, W)`` back as pixels in 0..1: the reconstruction target."""
        shape = (1, -1, 1, 1)
        return (images * self.pixel_std.view(shape) + self.pixel_mean.view(shape)).clamp(0, 1)

    # ---- steps ---------------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Check the data's channels and read how it normalises its images."""
        super().setup(stage)
        datamodule = datamodule_of(self._trainer)
        if datamodule is None:
            return
        shape = datamodule.image_shape
        if shape is not None and shape[0] != self.in_channels:
            raise DataError(
                f"the task has in_channels={self.in_channels} but {type(datamodule).__name__} has images with "
                f"{shape[0]} channels; set --model.in_channels {shape[0]}"
            )
        mean, std = input_stats(datamodule)
        if mean is not None and std is not None and mean.numel() == self.in_channels:
            self.pixel_mean.copy_(mean.flatten())
            self.pixel_std.copy_(std.flatten())

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> AutoencoderOutputs:
        """Reconstruction loss of one batch; updates and logs the stage's metrics."""
        images, labels = batch
        logits = self(images)
        target = self.pixels(images)
        loss = self.criterion(logits, target)
        reconstructed = torch.sigmoid(logits.detach())
        self.update_metrics(stage, reconstructed, target)
        self.log_loss(stage, loss, len(images))
        if stage != "train" and self._shown is None and self.reconstructions > 0:
            keep = slice(0, self.reconstructions)
            self._shown = (target[keep].cpu(), reconstructed[keep].cpu(), labels[keep].cpu())
        return {"loss": loss, "preds": reconstructed, "target": target}

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """The embedding and the label of every image in the batch."""
        images, labels = batch
        return {"embedding": self.encode(images), "label": labels}

    def write_predictions(self, batches: list[dict[str, Tensor]], output: Path) -> str:
        """Write the embeddings :meth:`predict_step` gave to ``output`` (``.npz`` or ``.pt``, as ``zoo.embed``
        does); called by ``python -m zoo.predict``.

        Returns:
            The line to print.
        """
        if not batches:
            raise ZooError("there are no images to embed")
        embeddings = torch.cat([batch["embedding"] for batch in batches]).float().cpu()
        labels = torch.cat([batch["label"] for batch in batches]).cpu()
        data = datamodule_of(self._trainer)
        write_embeddings(output, embeddings, labels, list(data.classes) if data is not None else None)
        return f"{len(labels)} embeddings of size {embeddings.shape[1]} written to {output}"

    # ---- figures -------------------------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        """Forget the previous epoch's images."""
        self._shown = None

    def on_test_epoch_start(self) -> None:
        """Forget the validation's images."""
        self._shown = None

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics and draw the reconstruction figure."""
        super().on_validation_epoch_end()
        self._draw("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and draw the reconstruction figure."""
        super().on_test_epoch_end()
        self._draw("test")

    def _draw(self, stage: str) -> None:
        shown, self._shown = self._shown, None
        if (
            shown is None
            or not self.trainer.is_global_zero
            or not should_draw(self.trainer, every_n_epochs=1)
        ):
            return
        data = datamodule_of(self.trainer)
        names = data.classes if data is not None else None
        save_figure(self.trainer, reconstruction_figure(*shown, names=names), f"{stage}/reconstructions")


def reconstruction_figure(
    pixels: Tensor, reconstructed: Tensor, labels: Tensor, *, names: Sequence[str] | None = None
) -> Image.Image:
    """Originals in the top row, their reconstructions under them, captioned with class and PSNR.

    Args:
        pixels: the original images ``(B, C, H, W)`` in 0..1.
        reconstructed: their reconstructions ``(B, C, H, W)`` in 0..1.
        labels: classes ``(B,)``, shown by name when ``names`` has them.
        names: class names in label order, or None.

    Returns:
        A PIL image of ``B * (IMAGE_TILE + PAD) + PAD`` by ``2 * (IMAGE_TILE + CAPTION + PAD) + PAD`` pixels.
    """
    error = (reconstructed.float() - pixels.float()).square().flatten(1).mean(dim=1)
    psnr = 10 * torch.log10(1 / error.clamp_min(1e-10))
    classes = [
        str(names[int(y)]) if names is not None and 0 <= int(y) < len(names) else f"label {int(y)}"
        for y in labels
    ]
    captions = [("original", name) for name in classes] + [("reconstruction", f"{p:.1f} dB") for p in psnr]
    tiles = to_tiles(torch.cat([pixels, reconstructed]), IMAGE_TILE)
    return captioned_grid(tiles, captions, len(pixels))
