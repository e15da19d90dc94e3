"""No host-device synchronisation on a training step that does not log, and a NaN loss still stops the run.

There is no GPU here, so the calls that read a device value on the host (``.item()``, ``bool(t)``, ``float(t)``,
``.cpu()``, ``.tolist()``, ...) are counted by patching them, step by step, through a real Trainer. What ``.cpu()``
returns is host memory on a GPU too: it is marked (:class:`HostTensor`, which torch's operations pass on to the
tensors made from it), and reading it again is not counted. The optimisers' step counters, host tensors unless an
optimiser is made ``capturable``, are read by ``torch.optim`` itself and not counted either. A torchmetrics update
counts as one: it reads its inputs on the host inside torch's C++ (``bincount``, ``one_hot``'s range check), where
no patch sees it.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from conftest import DETECTION_SMALL, make_idx_dataset
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection

from zoo.callbacks import TimedProgressBar
from zoo.cli import fit
from zoo.data import ShapesDataModule
from zoo.errors import DataError
from zoo.tasks import ClassificationTask, DetectionTask, LocalizationTask, SegmentationTask
from zoo.tasks.base import BaseTask, NonFiniteLossError
from zoo.tasks.step_checks import StepChecks, StepPosition

#: the Tensor methods that read a tensor's values on the host
SYNCING = ("item", "__bool__", "__float__", "__int__", "__index__", "cpu", "tolist", "numpy")
_OPTIMISERS = f"{os.sep}torch{os.sep}optim{os.sep}"


class HostTensor(Tensor):
    """A tensor in host memory: what ``.cpu()`` returned, or a tensor computed from one."""

    def __deepcopy__(self, memo: dict[int, Any]) -> HostTensor:  # ModelCheckpoint copies the logged values
        return self.as_subclass(Tensor).clone().as_subclass(HostTensor)


@contextmanager
def counting_syncs(record: Callable[[str, str], bool]) -> Iterator[None]:
    """Patch :data:`SYNCING` so that each call reading a device tensor calls ``record(method, caller)``, which says
    whether it counts calls now (what ``.cpu()`` returns is marked only then)."""
    originals = {name: getattr(Tensor, name) for name in SYNCING}

    def patched(name: str) -> Callable[..., Any]:
        original = originals[name]

        def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1)
            counting = not isinstance(self, HostTensor) and _OPTIMISERS not in caller.f_code.co_filename
            counting = counting and record(name, f"{caller.f_code.co_filename}:{caller.f_lineno}")
            result = original(self, *args, **kwargs)
            if counting and name == "cpu" and isinstance(result, Tensor):
                result = result.as_subclass(HostTensor)
            return result

        return method

    update = MetricCollection.update

    def counted_update(self: MetricCollection, *args: Any, **kwargs: Any) -> None:
        caller = sys._getframe(1)
        record("MetricCollection.update", f"{caller.f_code.co_filename}:{caller.f_lineno}")
        update(self, *args, **kwargs)

    for name in SYNCING:
        setattr(Tensor, name, patched(name))
    MetricCollection.update = counted_update  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(Tensor, name, original)
        MetricCollection.update = update  # type: ignore[method-assign]


class SyncsByStep(L.Callback):
    """Files every counted call under the training step it happened in (from one step's start to the next's), and
    none during validation."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.calls: dict[int, list[tuple[str, str]]] = defaultdict(list)
        self.bar: L.Callback | None = None

    def record(self, name: str, caller: str) -> bool:
        if self.step is not None:
            self.calls[self.step].append((name, caller))
        return self.step is not None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.step = trainer.global_step
        self.bar = trainer.progress_bar_callback

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step = None


def assert_syncs_only_when_logging(
    probe: SyncsByStep, steps: int, every: int, last_batches: set[int]
) -> None:
    """No counted call on a step that neither logs nor ends an epoch; the step checks, which do, were counted."""
    checks = {s for s in range(steps) if (s + 1) % every == 0} | last_batches
    quiet = {s: calls for s, calls in probe.calls.items() if calls and s not in checks}
    assert not quiet, f"host-device syncs on steps that do not log: {quiet}"
    # the count does see syncs: each step check copies the kept losses to the host
    assert all(any(name == "cpu" for name, _ in probe.calls[s]) for s in checks), dict(probe.calls)


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    count = torch.get_num_threads()  # zoo fit sets the threads of this process
    yield
    torch.set_num_threads(count)


def test_zoo_fit_reads_nothing_on_the_host_between_logging_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the real command, its callbacks (checkpoints, metrics.csv, learning rate, progress bar) and a logger
    root = make_idx_dataset(tmp_path / "idx", n_train=420, n_test=60)
    probe = SyncsByStep()
    extra = fit.FitCLI.extra_callbacks
    monkeypatch.setattr(fit.FitCLI, "extra_callbacks", lambda self: [*extra(self), probe])
    args = [
        "--recipe", "lenet5_fashionmnist", "--data.init_args.root", str(root),
        "--data.init_args.val_size", "100", "--data.init_args.batch_size", "32",
        "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.accelerator", "cpu",
        "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "3", "--save_every_n_steps", "0",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.callbacks", "[]",
        "--threads", "1",
    ]  # fmt: skip
    with counting_syncs(probe.record):
        assert fit.main(args) == 0
    capsys.readouterr()
    steps = 320 // 32
    assert sorted(probe.calls) and max(probe.calls) == steps - 1  # every step ran under the probe
    assert_syncs_only_when_logging(probe, steps, every=3, last_batches={steps - 1})
    assert isinstance(probe.bar, TimedProgressBar)  # the bar zoo fit draws


def _small(task: BaseTask) -> BaseTask:
    task.configure_optimizers = lambda: torch.optim.SGD(task.parameters(), lr=0.01)  # type: ignore[method-assign]
    return task


@pytest.mark.parametrize(
    "make",
    [
        lambda: ("localization", LocalizationTask("resnet20")),
        lambda: ("segmentation", SegmentationTask("fcn8s_resnet18", num_classes=4)),
        lambda: (
            "detection",
            DetectionTask("fasterrcnn_resnet18_fpn", num_classes=4, model_kwargs=DETECTION_SMALL),
        ),
    ],
    ids=["localization", "segmentation", "detection"],
)
def test_other_tasks_read_nothing_on_the_host_between_logging_steps(
    make: Callable[[], tuple[Any, BaseTask]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mode, task = make()
    data = ShapesDataModule(mode, image_size=48, num_train=12, num_val=2, num_test=2, batch_size=2)
    probe = SyncsByStep()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=5, log_every_n_steps=2, limit_val_batches=0, enable_model_summary=False,
        enable_checkpointing=False, logger=CSVLogger(tmp_path), callbacks=[probe, RichProgressBar()],
        default_root_dir=tmp_path,
    )  # fmt: skip
    with counting_syncs(probe.record):
        trainer.fit(_small(task), datamodule=data)
    capsys.readouterr()
    ours = {
        s: [c for c in calls if f"{os.sep}torchvision{os.sep}" not in c[1]]
        for s, calls in probe.calls.items()
    }
    probe.calls = defaultdict(
        list, ours
    )  # Faster R-CNN's own sampling reads its proposals: the network's, not ours
    assert_syncs_only_when_logging(probe, 5, every=2, last_batches={4})


def test_style_transfer_reads_nothing_on_the_host_between_logging_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from zoo.tasks import StyleTransferTask

    style = tmp_path / "style.png"
    Image.new("RGB", (16, 16), (200, 40, 40)).save(style)
    task = StyleTransferTask(str(style), style_size=16, loss_weights=None, allow_random=True)
    loader = DataLoader(TensorDataset(torch.rand(10, 3, 16, 16), torch.zeros(10)), batch_size=2)
    probe = SyncsByStep()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=5, log_every_n_steps=2, enable_model_summary=False,
        enable_checkpointing=False, logger=CSVLogger(tmp_path), callbacks=[probe, RichProgressBar()],
        default_root_dir=tmp_path,
    )  # fmt: skip
    with counting_syncs(probe.record):
        trainer.fit(task, train_dataloaders=loader)  # the task's own Adam: the style terms are large for SGD
    capsys.readouterr()
    assert_syncs_only_when_logging(probe, 5, every=2, last_batches={4})


class _Exploding(ClassificationTask):
    """Its loss becomes NaN at step :attr:`at`, and stays so."""

    at = 7

    def step(self, batch: Any, stage: Any) -> Any:
        outputs = dict(super().step(batch, stage))
        if stage == "train" and self.global_step >= self.at:
            outputs["loss"] = outputs["loss"] * float("nan")
        return outputs


def test_a_nan_loss_stops_the_run_at_the_next_check_naming_its_step(tmp_path: Path) -> None:
    images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    task = _small(_Exploding("mlp", model_kwargs={"image_size": 8, "hidden": 16}))
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, log_every_n_steps=5, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit(task, train_dataloaders=loader)
    # the steps 5 to 9 are read at step 9, the first check after the NaN at step 7
    assert str(error.value) == (
        "the training loss became nan at step 7 (epoch 0, batch 7; checked between step 5 and step 9); "
        "try a lower learning rate"
    )
    assert trainer.global_step == 9  # the run stopped there: step 9 took no optimiser step


def test_a_checkpoint_is_never_written_after_an_unchecked_nan(tmp_path: Path) -> None:
    images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    task = _small(_Exploding("mlp", model_kwargs={"image_size": 8, "hidden": 16}))
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, log_every_n_steps=50, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
        callbacks=[_SaveAt(8, tmp_path / "at8.ckpt")],
    )  # fmt: skip
    with pytest.raises(
        NonFiniteLossError, match=r"at step 7 \(epoch 0, batch 7; checked between step 0 and step 7\)"
    ):
        trainer.fit(task, train_dataloaders=loader)
    assert not (tmp_path / "at8.ckpt").exists()


class _SaveAt(L.Callback):
    def __init__(self, step: int, path: Path) -> None:
        self.at, self.path = step, path

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.at:
            trainer.save_checkpoint(self.path)


def test_step_checks_name_the_first_bad_step_of_a_long_window() -> None:
    checks = StepChecks()
    for step in range(300):  # more than are kept one by one: the earlier ones are stacked
        loss = torch.tensor(float("inf") if step in (270, 280) else 1.0 / (step + 1))
        checks.keep(loss, StepPosition(epoch=1, batch=step + 10, step=step + 100))
    assert len(checks) == 300
    with pytest.raises(NonFiniteLossError) as error:
        checks.check()
    assert str(error.value) == (
        "the training loss became inf at step 370 (epoch 1, batch 280; checked between step 100 and step 399); "
        "try a lower learning rate"
    )
    assert len(checks) == 0 and checks.check() is None  # read once, then forgotten


def test_step_checks_return_the_latest_loss_and_raise_for_a_data_fault() -> None:
    checks = StepChecks()
    message = "a mask holds class {value}; check the data"
    for step in range(3):
        checks.keep_fault(torch.tensor(step == 2), torch.tensor(7 * step), message)
        checks.keep(torch.tensor(0.5 + step), StepPosition(0, step, step))
    with pytest.raises(
        DataError, match=r"^a mask holds class 14; check the data \(step 2, epoch 0, batch 2; "
    ):
        checks.check()
    checks.keep_fault(torch.tensor(False), torch.tensor(0), message)
    checks.keep(torch.tensor(0.25), StepPosition(0, 3, 3))
    latest = checks.check()
    assert latest is not None and latest.device.type == "cpu" and latest.item() == 0.25
