"""Style transfer, both kinds: Johnson et al.'s feed-forward network (a task) and Gatys et al.'s optimisation.

* :class:`StyleTransferTask` trains :class:`~zoo.models.style.TransformerNet` over a DataModule of content images
  (:class:`~zoo.data.images.ImagesDataModule`) so that one forward pass stylises any photo in one fixed style:
  Johnson et al. 2016, as pytorch/examples' fast_neural_style sets it up (VGG-16 loss network, content weight
  1e5, style weight 1e10, Adam 1e-3, 256-pixel crops, batch 4).
* :func:`gatys_stylize` optimises the pixels of one image (Gatys et al. 2015; VGG-19, L-BFGS, style weight 1e6,
  content weight 1, 300 steps as in the PyTorch tutorial); ``python -m zoo.stylize`` runs it.

Both need a loss network with trained weights (:func:`~zoo.models.style.loss_network`); without them they stop
with a one-line :class:`~zoo.models.weights.WeightsError` rather than produce noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image
from torch import Tensor
from torchmetrics import MetricCollection
from torchvision.transforms import v2

from zoo.data.base import TaskKind
from zoo.data.readers.images import read_image
from zoo.errors import ZooError
from zoo.figures.drawing import tile_grid
from zoo.figures.saving import EVERY_N_EPOCHS, save_figure, should_draw, write_png
from zoo.models.style import (
    LossArch,
    Losses,
    PerceptualLoss,
    layer_names,
    loss_network,
)
from zoo.models.transformer_net import TransformerNet
from zoo.models.weights_files import WeightsError
from zoo.tasks.base import BaseTask, Stage
from zoo.tasks.outputs import StyleTransferOutputs

__all__ = [
    "GATYS_CONTENT_WEIGHT",
    "GATYS_STEPS",
    "GATYS_STYLE_WEIGHT",
    "StyleTransferTask",
    "gatys_stylize",
    "load_style",
    "to_pil",
]

#: the PyTorch neural-style tutorial's settings for Gatys et al.'s method
GATYS_STYLE_WEIGHT, GATYS_CONTENT_WEIGHT, GATYS_STEPS = 1e6, 1.0, 300


def to_pil(image: Tensor) -> Image.Image:
    """An RGB image ``(3, H, W)`` in 0..1 (clamped) as a PIL image."""
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy())


def load_style(source: str | Path, size: int | None) -> Tensor:
    """A style image as ``(1, 3, H, W)`` in 0..1, its shorter side resized to ``size`` (None: as it is).

    Args:
        source: a file, or ``skimage:NAME`` (see :func:`zoo.data.images.read_image`).
        size: shorter side in pixels, or None.
    """
    image = read_image(source)
    if size is not None:
        image = v2.functional.resize(image, [size], antialias=True)
    return v2.functional.to_dtype(image, torch.float32, scale=True).unsqueeze(0)


class StyleTransferTask(BaseTask):
    """Train Johnson et al.'s transformer net to paint content images in the style of one image.

    Args:
        style_image: the style, a file or ``skimage:NAME``.
        style_size: shorter side the style image is resized to before its Gram matrices are taken (None: as it
            is; pytorch/examples keeps it as it is, which makes the style's scale depend on the file).
        loss_network: ``"vgg16"`` (Johnson et al.) or ``"vgg19"``.
        loss_weights: ``"imagenet"`` (torchvision's weights, from the hub cache or downloaded once), the path of a
            torchvision VGG state dict file, or None (only with ``allow_random``).
        allow_random: accept a randomly initialised loss network (for tests: the network learns nothing useful).
        style_layers: loss network layers of the style loss; None: Johnson's (VGG-16) or Gatys' (VGG-19).
        content_layers: loss network layers of the content loss; None: ``relu2_2`` (VGG-16) or ``conv4_2``.
        content_weight: weight of the content loss (Johnson/pytorch-examples: 1e5).
        style_weight: weight of the style loss (1e10).
        tv_weight: weight of the total variation regulariser (pytorch/examples: 0).
        figure_every_n_epochs: how often the validation images are drawn stylised during a fit.
        figure_images: how many validation images the figure shows.

    Metrics: ``loss`` (the weighted total), ``content_loss``, ``style_loss`` and ``tv_loss`` (unweighted), per
    stage. The best checkpoint has the lowest ``val_loss``. Figures ``val/stylized`` and ``test/stylized``: the
    content images above their stylised versions, as PNGs in the run folder and images in W&B.

    Checkpoints hold only the transformer: the loss network is built when a fit, validation or test starts and
    is kept out of the state dict, so ``zoo.predict`` needs no VGG weights. Validation and test steps return
    :class:`~zoo.tasks.outputs.StyleTransferOutputs`.
    """

    kind: ClassVar[TaskKind] = "style_transfer"
    monitor: ClassVar[str] = "val_loss"
    mode: ClassVar[Literal["min", "max"]] = "min"
    #: ``zoo.predict`` writes a folder of PNG files, by default ``<checkpoint>-predictions/``
    predictions_suffix: ClassVar[str] = ""

    def __init__(
        self,
        style_image: str,
        *,
        style_size: int | None = 256,
        loss_network: LossArch = "vgg16",
        loss_weights: str | None = "imagenet",
        allow_random: bool = False,
        style_layers: list[str] | None = None,
        content_layers: list[str] | None = None,
        content_weight: float = 1e5,
        style_weight: float = 1e10,
        tv_weight: float = 0.0,
        figure_every_n_epochs: int = EVERY_N_EPOCHS,
        figure_images: int = 4,
    ) -> None:
        self.style_image, self.style_size = style_image, style_size
        self.loss_arch, self.loss_weights, self.allow_random = loss_network, loss_weights, allow_random
        self.style_layers, self.content_layers = style_layers, content_layers
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.figure_every_n_epochs, self.figure_images = figure_every_n_epochs, figure_images
        super().__init__()
        self._shown: tuple[Tensor, Tensor] | None = None

    def configure_models(self) -> None:
        """Build the transformer net; check the loss network's name and layers (it is built later)."""
        if self.loss_arch not in ("vgg16", "vgg19"):
            raise ZooError(f"loss_network must be 'vgg16' or 'vgg19', not '{self.loss_arch}'")
        names = layer_names(self.loss_arch)
        unknown = [n for n in (self.style_layers or []) + (self.content_layers or []) if n not in names]
        if unknown:
            raise ZooError(
                f"{self.loss_arch} has no layer {', '.join(unknown)}; its layers: {', '.join(names)}"
            )
        if self.loss_weights is None and not self.allow_random:
            raise WeightsError(_no_weights(self.loss_arch))
        self.net = TransformerNet()

    def configure_metrics(self) -> MetricCollection:
        """None: the losses are the metrics, logged directly."""
        return MetricCollection({})

    # ---- the loss network, kept out of the module tree ---------------------------------------------------

    def perceptual_loss(self) -> PerceptualLoss:
        """The loss against the style image, built on first use and moved to this task's device."""
        loss: PerceptualLoss | None = self.__dict__.get("_perceptual")
        if loss is None:
            try:
                network = loss_network(
                    self.loss_arch,
                    weights=self.loss_weights,
                    allow_random=self.allow_random,
                    style_layers=self.style_layers,
                    content_layers=self.content_layers,
                )
            except WeightsError as error:
                raise WeightsError(f"{error}; or set --model.loss_weights FILE (a local file)") from None
            style = load_style(self.style_image, self.style_size)
            loss = PerceptualLoss(
                network,
                style,
                content_weight=self.content_weight,
                style_weight=self.style_weight,
                tv_weight=self.tv_weight,
            )
            # a plain attribute, not a sub-module: no VGG in checkpoints, summaries or the optimiser
            self.__dict__["_perceptual"] = loss
        if loss.network.mean.device != self.device:
            loss.to(self.device)
        return loss

    def setup(self, stage: str) -> None:
        """Build the loss network before the first step of a fit, validation or test (not for predictions)."""
        super().setup(stage)
        if stage != "predict":
            self.perceptual_loss()

    # ---- steps -------------------------------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Stylised images ``(B, 3, H, W)`` for content images ``(B, 3, H, W)`` in 0..1 (outputs unclamped)."""
        return self.net(images)

    def losses(self, outputs: Tensor, contents: Tensor) -> Losses:
        """The perceptual losses of stylised ``outputs`` for their ``contents``."""
        loss = self.perceptual_loss()
        return loss(outputs, loss.content_targets(contents))

    def step(self, batch: tuple[Tensor, Any], stage: Stage) -> StyleTransferOutputs:
        """The weighted loss of one batch of content images; logs every term."""
        images, _ = batch
        outputs = self(images)
        losses = self.losses(outputs, images)
        train, size = stage == "train", len(images)
        # the total is summed on the device in training (BaseTask.log_loss): logged every step with prog_bar, the
        # progress bar would read it on the host every step; the terms, logged for the loggers only, are not read
        self.log_loss(stage, losses.total, size)
        terms = {f"{stage}_{k}_loss": getattr(losses, k) for k in ("content", "style", "tv")}
        self.log_dict(terms, on_step=train, on_epoch=True, sync_dist=True, batch_size=size)
        if not train and self._shown is None and self.figure_images > 0:
            self._shown = (images[: self.figure_images].detach(), outputs[: self.figure_images].detach())
        return {"loss": losses.total, "preds": outputs}

    def on_validation_epoch_start(self) -> None:
        """Forget the previous epoch's figure images."""
        self._shown = None

    def on_test_epoch_start(self) -> None:
        """Forget the previous figure images."""
        self._shown = None

    def on_validation_epoch_end(self) -> None:
        """Draw the first validation images stylised, when the figure callbacks' schedule says so."""
        super().on_validation_epoch_end()
        if should_draw(self.trainer, self.figure_every_n_epochs):
            self._draw("val/stylized")

    def on_test_epoch_end(self) -> None:
        """Draw the first test images stylised."""
        super().on_test_epoch_end()
        self._draw("test/stylized")

    def _draw(self, name: str) -> None:
        if self._shown is None or not self.trainer.is_global_zero:
            return
        contents, outputs = (
            self._shown
        )  # square crops: a row of contents above a row of their stylised versions
        tiles = (torch.cat([contents, outputs]).float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        save_figure(self.trainer, tile_grid(tiles, len(contents)), name)

    # ---- predictions: PNG files --------------------------------------------------------------------------

    def predict_step(self, batch: tuple[Tensor, list[str]], batch_idx: int) -> dict[str, Any]:
        """The stylised images of a batch, clamped to 0..1 on the CPU, with their names."""
        images, names = batch
        return {"images": self(images).clamp(0, 1).cpu(), "names": list(names)}

    def write_predictions(self, batches: list[dict[str, Any]], output: Path) -> str:
        """Write every stylised image as ``<output>/<name>.png`` (called by ``python -m zoo.predict``).

        Args:
            batches: what :meth:`predict_step` returned, batch by batch.
            output: a folder that does not exist yet.

        Returns:
            The line to print.
        """
        output.mkdir(parents=True)
        count = 0
        for batch in batches:
            for image, name in zip(batch["images"], batch["names"], strict=True):
                write_png(to_pil(image), output / f"{name}.png")  # a repeated name gets -2, never overwrites
                count += 1
        return f"{count} stylised images written to {output}"


def _no_weights(arch: str) -> str:
    return (
        f"the {arch} loss network has no weights: set loss_weights to 'imagenet' or a torchvision {arch} state "
        "dict file (a random network gives meaningless images)"
    )


# ---- Gatys et al.: optimise the image ------------------------------------------------------------------------


def gatys_stylize(
    loss: PerceptualLoss,
    content: Tensor,
    *,
    steps: int = GATYS_STEPS,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    lr: float | None = None,
    on_step: Callable[[int, Losses], None] | None = None,
) -> Tensor:
    """Optimise an image, starting from the content image, to lower ``loss`` (Gatys et al. 2015).

    Args:
        loss: the perceptual loss against the style image (VGG-19, style weight 1e6, content weight 1 for the
            PyTorch tutorial's settings).
        content: the content image ``(1, 3, H, W)`` in 0..1, on the loss network's device.
        steps: evaluations of the loss (L-BFGS evaluates it once or more per iteration) or Adam steps.
        optimizer: ``"lbfgs"`` (the tutorial's) or ``"adam"``.
        lr: the optimiser's learning rate; None: 1 for L-BFGS, 0.02 for Adam.
        on_step: called after every evaluation with its 1-based number and the losses.

    Returns:
        The stylised image ``(1, 3, H, W)`` in 0..1, detached.
    """
    if steps < 1:
        raise ZooError(f"steps must be at least 1, got {steps}")
    targets = loss.content_targets(content)
    image = content.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    done = 0

    def evaluate() -> Tensor:
        nonlocal done
        with torch.no_grad():
            image.clamp_(0, 1)  # optimise within the valid pixel range, as the PyTorch tutorial does
        opt.zero_grad()
        losses = loss(image, targets)
        losses.total.backward()
        done += 1
        if on_step is not None:
            on_step(done, Losses(*(t.detach() for t in losses)))
        return losses.total

    opt: torch.optim.Optimizer
    if optimizer == "lbfgs":
        # one call runs the whole optimisation; max_eval caps the loss evaluations at exactly `steps`
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=steps, max_eval=steps)
        opt.step(evaluate)
    elif optimizer == "adam":
        opt = torch.optim.Adam([image], lr=lr or 0.02)
        for _ in range(steps):
            opt.step(evaluate)
    else:
        raise ZooError(f"optimizer must be 'lbfgs' or 'adam', not '{optimizer}'")
    return image.detach().clamp(0, 1)
