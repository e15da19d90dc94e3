"""A fit skips torch's NVML probe on each optimiser step only where the probe can only fail, and puts it back."""

from __future__ import annotations

import ctypes
import os
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from zoo.tasks import ClassificationTask, cuda_probe
from zoo.tasks.cuda_probe import PROBE_VARIABLE, restore_probe, skip_failing_probe

NVML = "libnvidia-ml.so.1"


@pytest.fixture
def probe_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable as importing Lightning leaves it, on a torch built with CUDA."""
    monkeypatch.setenv(PROBE_VARIABLE, "1")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)


@pytest.mark.usefixtures("probe_on")
@pytest.mark.parametrize("loads", [False, True])
def test_the_probe_goes_only_where_nvml_cannot_load(monkeypatch: pytest.MonkeyPatch, loads: bool) -> None:
    monkeypatch.setattr(cuda_probe, "nvml_loads", lambda: loads)
    before = skip_failing_probe()
    assert os.environ[PROBE_VARIABLE] == ("1" if loads else "0")
    assert before == (None if loads else "1")
    restore_probe(before)
    assert os.environ[PROBE_VARIABLE] == "1"


@pytest.mark.parametrize("setting", [None, "0"])
def test_a_probe_already_off_or_unset_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    monkeypatch.setattr(cuda_probe, "nvml_loads", lambda: False)
    if setting is None:
        monkeypatch.delenv(PROBE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(PROBE_VARIABLE, setting)
    assert skip_failing_probe() is None
    assert os.environ.get(PROBE_VARIABLE) == setting


@pytest.mark.usefixtures("probe_on")
def test_a_torch_without_cuda_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_probe, "nvml_loads", lambda: False)
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    assert skip_failing_probe() is None
    assert os.environ[PROBE_VARIABLE] == "1"


class Bare(L.LightningModule):
    """A LightningModule of Lightning's alone: a linear layer, Adam (SGD's step asks nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(64, 10)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return F.cross_entropy(self.layer(batch[0].flatten(1)), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


class Loads(L.Callback):
    """Counts the attempts to load NVML while the fit's batches run, and keeps the probe's setting during them."""

    def __init__(self, attempts: list[str]) -> None:
        self.attempts = attempts
        self.settings: set[str | None] = set()
        self.before_steps = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.before_steps = len(self.attempts)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.settings.add(os.environ.get(PROBE_VARIABLE))

    def during_steps(self) -> int:
        return len(self.attempts) - self.before_steps


@pytest.mark.skipif(not torch.backends.cuda.is_built(), reason="a torch without CUDA never probes NVML")
@pytest.mark.usefixtures("probe_on")
def test_a_task_fit_on_a_host_without_nvml_makes_no_attempt_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host is made one without NVIDIA's driver, whatever this one is: loading NVML fails and is counted."""
    attempts: list[str] = []
    real_cdll = ctypes.CDLL

    def cdll(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == NVML:
            attempts.append(name)
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(cuda_probe, "nvml_loads", lambda: False)
    generator = torch.Generator().manual_seed(0)
    images, labels = (
        torch.randn(24, 1, 8, 8, generator=generator),
        torch.randint(0, 10, (24,), generator=generator),
    )
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    steps = len(loader)

    def fit(module: L.LightningModule) -> Loads:
        loads = Loads(attempts)
        L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False,
                  callbacks=[loads]).fit(module, train_dataloaders=loader)  # fmt: skip
        return loads

    bare = fit(Bare())
    assert bare.during_steps() >= steps  # the control: Lightning's own loop tries once a step or more
    assert bare.settings == {"1"}

    task = fit(ClassificationTask("mlp", model_kwargs={"image_size": 8, "hidden": 16}))  # Adam, the default
    assert task.during_steps() == 0
    assert task.settings == {"0"}
    assert os.environ[PROBE_VARIABLE] == "1"  # put back when the fit ended
