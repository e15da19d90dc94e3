"""Image classification: a registered network, cross-entropy, accuracy per stage, per-class accuracy at test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from zoo.data.base import TaskKind
from zoo.errors import DataError, ZooError
from zoo.models.base import Backbone
from zoo.tasks.base import BaseTask, Stage, build_network, datamodule_of
from zoo.tasks.outputs import ClassificationOutputs

__all__ = ["ClassificationTask"]


class ClassificationTask(BaseTask):
    """Train any registered network to classify images.

    Args:
        model: a name from :func:`zoo.models.list_models`.
        num_classes: number of classes; must match the data.
        in_channels: channels of the input images (1 for the MNIST family, 3 for CIFAR).
        weights: pretrained weights to start from: a tag from :func:`zoo.models.list_weights`, a zoo checkpoint
            path or a ``wandb:`` artifact reference; None to start from scratch. When they were trained on
            another number of classes, the head's last layer is replaced by a fresh one for ``num_classes``.
        model_kwargs: further keyword arguments for the network's builder (``image_size``, ``head``, ...).
        label_smoothing: cross-entropy label smoothing, 0 for none.
        freeze_backbone: train the head only; everything before it keeps its weights (a linear probe of
            the pretrained features when the head is one layer). Frozen batch norms keep their statistics.
        unfreeze_at_epoch: with ``freeze_backbone``, the epoch at which the whole network starts to train
            (the head learns first, so its random start does not disturb the pretrained features);
            None keeps the backbone frozen to the end.
        tta_flip: test-time augmentation: outside training (validation, test, prediction), the logits are the
            mean of those of the image and of its horizontal mirror (airbench's flip TTA). Only for data whose
            classes do not change under a mirror (Fashion-MNIST, CIFAR; not digits).
        tta_shift: test-time augmentation by translation, in pixels (0: none): outside training, the logits are
            weighted 1/2 for the image and 1/4 for each of two copies moved by this many pixels, one up and left,
            one down and right, the borders repeated (airbench's translate TTA); with ``tta_flip``, every copy
            is also mirrored. Meant for data trained with translations of at least this many pixels.
        channels_last: keep the network's weights and each batch in the channels-last memory format, which
            convolutions run faster in on recent CPUs and on GPUs with tensor cores (benchmarks/README.md).
        torch_compile: run the network through ``torch.compile`` (the first steps take longer while it compiles). The
            network's parameters and checkpoint keys are unchanged.

    Metrics: ``acc`` (top-1), ``acc_top5`` when there are more than 5 classes, ``loss``; at test also the
    accuracy of each class, logged as ``test_acc/<class>``. The best checkpoint is the one with the highest
    ``val_acc``. Validation and test steps return :class:`~zoo.tasks.outputs.ClassificationOutputs`.
    """

    kind: ClassVar[TaskKind] = "classification"
    num_classes: int
    #: the network as forward calls it: ``net`` itself, or its ``torch.compile`` wrapper
    _run_net: Callable[[Tensor], Tensor]
    monitor: ClassVar[str] = "val_acc"
    mode: ClassVar[Literal["min", "max"]] = "max"

    def __init__(
        self,
        model: str = "lenet5",
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        weights: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        freeze_backbone: bool = False,
        unfreeze_at_epoch: int | None = None,
        tta_flip: bool = False,
        tta_shift: int = 0,
        channels_last: bool = False,
        torch_compile: bool = False,
    ) -> None:
        if unfreeze_at_epoch is not None and not freeze_backbone:
            raise ZooError("unfreeze_at_epoch needs freeze_backbone: true (there is nothing to unfreeze)")
        if freeze_backbone and weights is None:
            raise ZooError("freeze_backbone without weights would freeze random features; give weights")
        self.model_name, self.num_classes, self.in_channels = model, num_classes, in_channels
        self.weights, self.model_kwargs = weights, dict(model_kwargs or {})
        self.label_smoothing = label_smoothing
        self.freeze_backbone, self.unfreeze_at_epoch = freeze_backbone, unfreeze_at_epoch
        self.tta_flip, self.channels_last, self.torch_compile = tta_flip, channels_last, torch_compile
        if not (isinstance(tta_shift, int) and tta_shift >= 0):
            raise ZooError(f"tta_shift must be a whole number of pixels (0 or more), got {tta_shift!r}")
        self.tta_shift = tta_shift
        super().__init__()

    def configure_models(self) -> None:
        """Build the network from the registry."""
        # pretrained weights bring their own classes; a head for other classes replaces theirs below
        num_classes = None if self.weights is not None else self.num_classes
        self.net = build_network(
            self.model_name,
            num_classes=num_classes,
            in_channels=self.in_channels,
            weights=self.weights,
            **self.model_kwargs,
        )
        if (self.weights is not None or self.freeze_backbone) and not isinstance(self.net, Backbone):
            raise ZooError(f"model '{self.model_name}' has no head to retrain: transfer needs a classifier")
        if isinstance(self.net, Backbone) and self.net.num_classes != self.num_classes:
            self.net.reset_classifier(self.num_classes)
        self._set_backbone_trainable(not self.freeze_backbone)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        # kept outside the module tree, so state_dict keys stay those of the plain network
        object.__setattr__(self, "_run_net", torch.compile(self.net) if self.torch_compile else self.net)

    def _backbone_frozen_at(self, epoch: int) -> bool:
        return self.freeze_backbone and (self.unfreeze_at_epoch is None or epoch < self.unfreeze_at_epoch)

    def _set_backbone_trainable(self, trainable: bool) -> None:
        if not isinstance(self.net, Backbone):
            return
        head = {id(p) for p in self.net.head.parameters()}
        for p in self.net.parameters():
            p.requires_grad_(trainable or id(p) in head)

    def on_train_epoch_start(self) -> None:
        """Freeze or unfreeze the backbone for this epoch; frozen batch norms stay in evaluation mode."""
        frozen = self._backbone_frozen_at(self.current_epoch)
        self._set_backbone_trainable(not frozen)
        if frozen and isinstance(self.net, Backbone):
            head = set(self.net.head.modules())
            for module in self.net.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module not in head:
                    module.eval()

    def configure_metrics(self) -> MetricCollection:
        """Top-1 accuracy, and top-5 when there are more than five classes."""
        metrics: dict[str, Metric | MetricCollection] = {
            "acc": MulticlassAccuracy(self.num_classes, average="micro"),
        }
        if self.num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(self.num_classes, top_k=5, average="micro")
        self.class_accuracy = MulticlassAccuracy(self.num_classes, average="none")
        return MetricCollection(metrics)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` for images ``(B, C, H, W)``; outside training, with ``tta_flip`` or
        ``tta_shift``, the weighted mean of the logits of the images' copies."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.training or not self.tta_shift:
            return self._mirrored_logits(images)
        shift, (height, width) = self.tta_shift, images.shape[-2:]
        padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
        up_left = padded[..., 2 * shift :, 2 * shift :]
        down_right = padded[..., :height, :width]
        return (
            self._mirrored_logits(images) / 2
            + self._mirrored_logits(up_left) / 4
            + self._mirrored_logits(down_right) / 4
        )

    def _mirrored_logits(self, images: Tensor) -> Tensor:
        """The network's logits; with ``tta_flip`` outside training, their mean with the mirror images'."""
        logits = self._run_net(images)
        if self.tta_flip and not self.training:
            logits = (logits + self._run_net(images.flip(3))) / 2
        return logits

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> ClassificationOutputs:
        """Cross-entropy of one batch; logs it and updates the stage's metrics."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.update_metrics(stage, logits, labels)
        self.log_loss(stage, loss, len(labels))
        if stage == "test":
            self.class_accuracy.update(logits, labels)
        return {"loss": loss, "logits": logits, "target": labels}

    def on_test_epoch_end(self) -> None:
        """Log the test metrics and the accuracy of every class, by name when the data has class names."""
        super().on_test_epoch_end()
        per_class = self.class_accuracy.compute()
        self.class_accuracy.reset()
        data = datamodule_of(self.trainer)
        names: Sequence[Any] = range(len(per_class))
        if data is not None and len(data.classes) == len(per_class):
            names = data.classes
        # already gathered from every rank by torchmetrics; sync_dist only averages identical values
        self.log_dict({f"test_acc/{n}": v for n, v in zip(names, per_class, strict=True)}, sync_dist=True)

    def setup(self, stage: str) -> None:
        """The base class's checks, then, before training, that the network takes the data's images: a folder
        of another size or channel count is refused in one line, not with a traceback from the first step."""
        super().setup(stage)
        data = datamodule_of(self._trainer)
        shape = data.image_shape if data is not None else None
        if stage != "fit" or data is None or shape is None:
            return
        name = type(data).__name__
        if shape[0] != self.in_channels:
            raise DataError(
                f"{self.model_name} takes {self.in_channels}-channel images but {name} gives {shape[0]}: set "
                f"--model.init_args.in_channels {shape[0]}, or give the data {self.in_channels} channels"
            )
        training = self.net.training
        self.net.eval()  # a trial batch must not move batch norm statistics
        try:
            with torch.no_grad():
                self.net(torch.zeros(1, *shape, device=next(self.net.parameters()).device))
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
            built = self.model_kwargs.get("image_size")
            size = f" ({built})" if built is not None else ""
            raise DataError(
                f"{self.model_name} cannot take the {shape[1]}x{shape[2]} images of {name} ({reason}): give the data "
                f"the image size the network was built for{size} with --data.init_args.image_size, or build the "
                "network for this size (model_kwargs)"
            ) from None
        finally:
            self.net.train(training)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Predicted class, its probability, the probabilities of every class ``(B, num_classes)`` and the label of
        every image in the batch (for unlabelled images, :class:`~zoo.data.photos.PhotosDataModule`, its number)."""
        images, labels = batch
        probabilities = torch.softmax(self(images), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return {
            "label": labels,
            "predicted": predicted,
            "confidence": confidence,
            "probabilities": probabilities,
        }
