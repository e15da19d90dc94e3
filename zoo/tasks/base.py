"""What every task shares: the template ``__init__``, metrics per stage, the default optimiser, checks.

A task (torchgeo's trainers are the model here) is built in a fixed order: save the hyperparameters, then
:meth:`BaseTask.configure_models`, :meth:`BaseTask.configure_losses` and :meth:`BaseTask.configure_metrics`.
The metric collection it returns is cloned once per stage with ``train_``/``val_``/``test_`` prefixes; a task's
``step`` updates it every batch and :meth:`BaseTask.log_epoch_metrics` logs it once, at the end of the epoch.

A task never knows which dataset it is given. It declares its :attr:`BaseTask.kind`, and reads the data only
through :class:`~zoo.data.base.ZooDataModule`'s declared names: it refuses data that does not serve its kind, and
checks that the data's ``num_classes`` agrees with its own. Its validation and test steps return their outputs
(:mod:`zoo.tasks.outputs`), which Lightning hands to the callbacks.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary
from torch import Tensor, nn
from torchmetrics import MetricCollection

from zoo.data.base import TaskKind, ZooDataModule
from zoo.data.photos import DATA_RECORD, data_record
from zoo.errors import DataError, ZooError
from zoo.models import create_model
from zoo.tasks.cuda_probe import restore_probe, skip_failing_probe
from zoo.tasks.outputs import detached
from zoo.tasks.step_checks import NonFiniteLossError, StepChecks, StepPosition

__all__ = ["BaseTask", "NonFiniteLossError", "Stage", "WritesPredictions", "build_network", "datamodule_of"]

Stage = Literal["train", "val", "test"]


def _joined(parts: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """``torch.cat(parts)``, without the copy when there is one part (a task that updates its metrics every batch)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def datamodule_of(trainer: L.Trainer | None) -> ZooDataModule | None:
    """The trainer's DataModule when it is a :class:`~zoo.data.base.ZooDataModule`; None otherwise.

    A plain ``LightningDataModule``, plain loaders or no trainer at all declare nothing a task or callback may
    read, so they give None.
    """
    # Lightning sets the attribute at run time without declaring it on the Trainer class
    datamodule = getattr(trainer, "datamodule", None)
    return datamodule if isinstance(datamodule, ZooDataModule) else None


@runtime_checkable
class WritesPredictions(Protocol):
    """A task whose predictions are not one CSV row an image (detection, segmentation, style transfer, autoencoder)
    and that writes them itself."""

    def write_predictions(self, batches: list[Any], output: Path) -> str:
        """Write what ``predict_step`` returned, batch by batch, to ``output``; return the line to print."""
        ...


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """``create_model(name, **kwargs)``, with a builder's rejection of its arguments as a :class:`ZooError`.

    A task's options come from a recipe or the command line, so a bad one is the user's input: one line, not a
    traceback.
    """
    try:
        return create_model(name, **kwargs)
    except ZooError:
        raise
    except (TypeError, ValueError) as error:  # a builder rejecting its arguments
        raise ZooError(f"cannot build model '{name}': {error}") from error


class BaseTask(L.LightningModule):
    """Template for the tasks. Subclasses set their typed attributes, then call ``super().__init__()``.

    Class attributes:
        kind: what the task does with the data; it trains only on a ``ZooDataModule`` whose ``kinds`` list it.
        monitor: the logged metric that picks the best checkpoint.
        mode: whether ``monitor`` is better when ``"min"`` or ``"max"``.
        predictions_suffix: the suffix of ``python -m zoo.predict``'s default output (``""``: a folder).
    """

    kind: ClassVar[TaskKind]
    monitor: ClassVar[str] = "val_loss"
    mode: ClassVar[Literal["min", "max"]] = "min"
    predictions_suffix: ClassVar[str] = ".csv"

    #: set by tasks whose outputs are class scores, checked against the data's ``num_classes``
    num_classes: int | None = None
    #: True for tasks whose ``num_classes`` counts the objects only, given data whose count adds the background
    data_counts_background: ClassVar[bool] = False
    #: batches whose metric inputs :meth:`update_metrics` gathers before one update of the metrics: a torchmetrics
    #: update costs a tenth of a LeNet-5 step on a CPU, and the epoch's values do not change (1 for big inputs)
    metric_batches: ClassVar[int] = 32
    #: bytes of training metric inputs kept at most between two step checks (:meth:`check_steps`), which pass them on
    metric_bytes: ClassVar[int] = 256 * 2**20
    #: the data record of the checkpoint this task was loaded from, kept when it is saved with no DataModule
    _data_record: dict[str, Any] | None = None
    #: the CUDA probe's setting a fit replaced (:meth:`on_fit_start`), put back when it ends
    _probe_before: str | None = None

    def __init__(self, ignore: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=ignore)
        self._metric_inputs: dict[str, list[tuple[tuple[Tensor, ...], dict[str, Tensor]]]] = {}
        self._metric_input_bytes = 0  # of the training inputs kept
        #: the training steps' losses and data faults, on the device until :meth:`check_steps` reads them
        self.step_checks = StepChecks()
        #: per training term, the epoch's sum of (term x batch size) on the term's device, and of batch sizes
        self._train_sums: dict[str, tuple[Tensor, int]] = {}
        self.configure_models()
        self.configure_losses()
        metrics = self.configure_metrics()
        self.train_metrics = metrics.clone(prefix="train_")
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    # ---- the template ----------------------------------------------------------------------------------------

    @abstractmethod
    def configure_models(self) -> None:
        """Build the network(s) as attributes of the task.

        Plural on purpose: Lightning calls a hook named ``configure_model`` again at fit time, which would
        rebuild the network behind the optimiser's back.
        """

    def configure_losses(self) -> None:
        """Build the loss function(s), when they are modules or need settings."""

    @abstractmethod
    def configure_metrics(self) -> MetricCollection:
        """The metrics of one stage; the base class clones them per stage."""

    @abstractmethod
    def step(self, batch: Any, stage: Stage) -> Mapping[str, Any]:
        """Compute the loss of one batch, update that stage's metrics and log them.

        Returns:
            The batch's outputs as :mod:`zoo.tasks.outputs` describes them for the task's kind, ``"loss"`` with
            its gradient: :meth:`training_step` keeps the loss, the evaluation steps return them detached.
        """

    # ---- Lightning hooks -------------------------------------------------------------------------------------

    def metrics_of(self, stage: Stage) -> MetricCollection:
        """The metric collection of ``stage``."""
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def update_metrics(self, stage: Stage, *args: Tensor, **kwargs: Tensor) -> None:
        """Update ``stage``'s metrics with one batch's predictions and targets (as ``MetricCollection.update``).

        The inputs are kept, detached, and passed on together every :attr:`metric_batches` batches and at the end of
        the epoch: the same values, for a fraction of torchmetrics' cost per call. Training inputs wait for the next
        step check instead (:meth:`check_steps`), or until they hold :attr:`metric_bytes`: a torchmetrics update
        reads its inputs on the host (its argument checks, ``bincount``), which would stop the device on a step that
        does not log.
        """
        kept = self._metric_inputs.setdefault(stage, [])
        kept.append((tuple(a.detach() for a in args), {k: v.detach() for k, v in kwargs.items()}))
        if stage == "train":
            self._metric_input_bytes += sum(t.numel() * t.element_size() for t in (*args, *kwargs.values()))
            if self._metric_input_bytes >= self.metric_bytes:
                self._flush_metric_inputs(stage)
        elif len(kept) >= self.metric_batches:
            self._flush_metric_inputs(stage)

    def _flush_metric_inputs(self, stage: Stage) -> None:
        if stage == "train":
            self._metric_input_bytes = 0
        kept = self._metric_inputs.pop(stage, [])
        if not kept:
            return
        args = [_joined(parts) for parts in zip(*(a for a, _ in kept), strict=True)]
        kwargs = {key: _joined([k[key] for _, k in kept]) for key in kept[0][1]}
        self.metrics_of(stage).update(*args, **kwargs)

    def log_loss(self, stage: Stage, loss: Tensor, batch_size: int, *, name: str = "loss") -> None:
        """Log one batch's loss as ``<stage>_<name>``.

        Evaluation batches go through ``self.log`` (the epoch's mean, weighted by batch size, over every rank). Each
        ``self.log`` call costs Lightning about half a millisecond on a CPU, a sixth of a LeNet-5 step
        (``benchmarks/overhead.py``), so training terms are summed on the device instead and logged once an epoch:
        the loss as ``train_loss_epoch``, any other term as ``train_<name>``, the epoch's mean. (The latest loss is
        logged as ``train_loss_step`` by :meth:`training_step` at the step checks.)
        """
        if stage != "train":
            self.log(f"{stage}_{name}", loss, on_epoch=True, prog_bar=name == "loss", sync_dist=True,
                     batch_size=batch_size)  # fmt: skip
            return
        value = loss.detach()
        total, samples = self._train_sums.get(name, (None, 0))
        if total is None or total.device != value.device:
            total = torch.zeros((), device=value.device) if total is None else total.to(value.device)
        # one in-place op a step: between a step's big kernels, each small op costs tens of microseconds
        total.add_(value, alpha=batch_size)
        self._train_sums[name] = (total, samples + batch_size)

    def log_epoch_metrics(self, stage: Stage) -> None:
        """Log ``stage``'s metrics over the whole epoch (every rank's batches), then reset them.

        Steps only update the metrics (:meth:`update_metrics`); logging them once an epoch, not every step,
        saves a ``self.log`` call per metric and step (see :meth:`log_loss`). Subclasses that override an
        epoch-end hook call the base class's first.
        """
        self._flush_metric_inputs(stage)
        if stage == "train":
            # every rank trains on as many samples (zoo's samplers deal out equal shares): the mean of the ranks'
            # means is the mean over all of them
            for name, (total, samples) in self._train_sums.items():
                self.log(
                    "train_loss_epoch" if name == "loss" else f"train_{name}", total / samples, sync_dist=True
                )
            self._train_sums.clear()
        metrics = self.metrics_of(stage)
        if not any(metric.update_called for metric in metrics.values(copy_state=False)):
            return
        # compute() gathers every rank's state; sync_dist only averages the identical results (and keeps
        # Lightning from warning that epoch-level values are not synchronised)
        self.log_dict(metrics.compute(), prog_bar=stage != "test", sync_dist=True)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        """Check the steps not checked yet (a run stopped mid-epoch), then log the training metrics of the epoch."""
        self.check_steps()
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics (before the checkpoint callbacks read them in ``on_validation_end``)."""
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self.log_epoch_metrics("test")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One optimisation step's loss. It stays on the device until the next step check (:meth:`check_steps`),
        where a NaN or infinite loss stops the run with a message naming its step; the latest loss is logged there
        as ``train_loss_step``."""
        loss: Tensor = self.step(batch, "train")["loss"]
        self.step_checks.keep(loss, StepPosition(self.current_epoch, batch_idx, self.global_step))
        trainer = self._trainer
        if trainer is None:  # a step run by hand
            self.check_steps()
            return loss
        every: int = getattr(trainer, "log_every_n_steps", 0)  # set on the trainer at run time; 0: never
        logs = every > 0 and (self.global_step + 1) % every == 0  # the steps Lightning hands to the loggers
        batches, max_steps = trainer.num_training_batches, trainer.max_steps
        last = batch_idx + 1 >= batches or 0 < max_steps <= self.global_step + 1
        if logs or last:
            latest = self.check_steps()
            if logs and latest is not None:
                # in host memory: Lightning converts the progress bar's values every batch, which then costs nothing
                self.log("train_loss_step", latest, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def check_steps(self) -> Tensor | None:
        """Read what the training steps kept on the device since the last check, in one transfer, and pass the
        training metrics their kept inputs (:meth:`update_metrics`).

        Called by :meth:`training_step` every ``log_every_n_steps`` steps and at the epoch's last batch, at the end
        of the epoch and before a checkpoint is saved, so that a checkpoint never holds weights a NaN step wrote.

        Returns:
            The latest training loss, in host memory, or None when no step was run since the last check.

        Raises:
            NonFiniteLossError: a step's loss was NaN or infinite (the message names the step).
            DataError: a step's data was wrong in a way the task looked for on the device.
        """
        latest = self.step_checks.check()
        self._flush_metric_inputs("train")
        return latest

    def validation_step(self, batch: Any, batch_idx: int) -> Mapping[str, Any]:
        """Validation loss and metrics; the batch's outputs, detached, for the callbacks."""
        return detached(self.step(batch, "val"))

    def test_step(self, batch: Any, batch_idx: int) -> Mapping[str, Any]:
        """Test loss and metrics; the batch's outputs, detached, for the callbacks."""
        return detached(self.step(batch, "test"))

    def configure_callbacks(self) -> list[L.Callback]:
        """Put :class:`~zoo.callbacks.network_summary.NetworkSummary` in the place of the trainer's model summary,
        if it has one: the network's layers without the rows of metric modules."""
        from zoo.callbacks.network_summary import NetworkSummary  # callbacks import tasks, so not at the top

        callbacks = getattr(self._trainer, "callbacks", [])  # set on the trainer at run time
        summary = next((c for c in callbacks if isinstance(c, ModelSummary)), None)
        if summary is None or isinstance(summary, NetworkSummary):
            return []
        # Lightning drops the trainer's callback of the class this one subclasses
        return [NetworkSummary(max_depth=summary._max_depth, **summary._summarize_kwargs)]

    def configure_optimizers(self) -> Any:
        """Adam at 1e-3, used when no recipe gives ``optimizer:`` (recipes replace this method)."""
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def on_fit_start(self) -> None:
        """Skip, for the fit, torch's NVML probe on each optimiser step where it can only fail: on a host without
        NVIDIA's driver it cost an Adam step about half a millisecond (:mod:`zoo.tasks.cuda_probe`)."""
        self._probe_before = skip_failing_probe()

    def on_fit_end(self) -> None:
        """Put torch's CUDA probe back as the fit found it."""
        restore_probe(self._probe_before)
        self._probe_before = None

    def on_train_start(self) -> None:
        """Tell run-length schedules (:mod:`zoo.tasks.schedules`) how many optimiser steps the run has."""
        for config in self.trainer.lr_scheduler_configs:
            set_total_steps = getattr(config.scheduler, "set_total_steps", None)
            if callable(set_total_steps):
                set_total_steps(self.trainer.estimated_stepping_batches)

    def setup(self, stage: str) -> None:
        """Check, before any step runs, that the data serves this task's kind, has as many classes, and has images of
        the channels the network takes."""
        datamodule = datamodule_of(self._trainer)
        if datamodule is None:
            return
        name = type(datamodule).__name__
        if self.kind not in datamodule.kinds:
            served = ", ".join(sorted(datamodule.kinds)) or "no task"
            raise DataError(
                f"{type(self).__name__} needs {self.kind} data, but {name} serves {served}; choose a DataModule "
                f"for {self.kind}"
            )
        background = int(self.data_counts_background)
        if (
            self.num_classes is not None
            and (data_classes := datamodule.num_classes) != self.num_classes + background
        ):
            counted = " (background included)" if background else ""
            raise DataError(
                f"the task has num_classes={self.num_classes} but {name} has "
                f"{data_classes} classes{counted}; set --model.num_classes {data_classes - background}"
            )
        shape = datamodule.image_shape
        channels = getattr(self, "in_channels", None)  # the network's input channels, for the tasks that say
        if shape is not None and isinstance(channels, int) and channels != shape[0]:
            network = getattr(self, "model_name", type(self).__name__)
            raise DataError(
                f"{network} takes {channels}-channel images (in_channels={channels}) but {name} gives {shape[0]}: set "
                f"--model.init_args.in_channels {shape[0]}, or give the data {channels} channels"
            )
        if shape is not None:
            self.example_input_array = torch.zeros(1, *shape)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random state, so that a resumed run draws the same dropout masks as an uninterrupted one, and what
        the data declares (:func:`zoo.data.photos.data_record`: class names, image shape, normalisation), so that
        ``zoo predict`` can make new images into inputs with the checkpoint alone. The training steps not checked
        yet are checked first (:meth:`check_steps`)."""
        self.step_checks.check()
        checkpoint["zoo_rng"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["zoo_rng"]["cuda"] = torch.cuda.get_rng_state_all()
        datamodule = datamodule_of(self._trainer)
        record = data_record(datamodule) if datamodule is not None else self._data_record
        if record is not None:
            checkpoint[DATA_RECORD] = record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the random state saved by :meth:`on_save_checkpoint`; keep its data record for the next save."""
        self._data_record = checkpoint.get(DATA_RECORD)
        state = checkpoint.get("zoo_rng")
        if state is None:
            return
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
