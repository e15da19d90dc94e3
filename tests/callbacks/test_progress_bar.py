"""zoo's progress bar redraws a few times a second, not after every batch, and still ends each loop drawn full."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from zoo.callbacks import TimedProgressBar
from zoo.callbacks import progress_bar as module


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.log("loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(batches: int) -> DataLoader[Any]:
    return DataLoader(
        TensorDataset(torch.randn(batches * 2, 4), torch.randint(0, 2, (batches * 2,))), batch_size=2
    )


def test_a_redraw_is_due_after_the_interval_and_on_the_last_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    bar = TimedProgressBar(refresh_rate=4)
    assert bar.interval == 0.25
    assert bar._due(0, 10)  # the first batch is drawn
    now[0] += 0.1
    assert not bar._due(1, 10)
    now[0] += 0.1
    assert not bar._due(2, 10)
    now[0] += 0.06  # 0.26 s after the last drawing
    assert bar._due(3, 10)
    assert bar._due(9, 10)  # the last batch, at once
    assert not bar._due(4, float("inf"))  # a loader without a length has no last batch


@pytest.mark.parametrize("rate", [-1, 2.5])
def test_a_refresh_rate_that_is_not_a_count_is_refused(rate: Any) -> None:
    with pytest.raises(ValueError, match="refresh_rate must be a whole number"):
        TimedProgressBar(refresh_rate=rate)


def redraws(bar: RichProgressBar, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, int]:
    """How often ``bar`` gathered the metrics and moved each bar during a 40-batch fit with 10 validation batches."""
    counts = {"metrics": 0, "updates": 0}
    gather, update = RichProgressBar._update_metrics, RichProgressBar._update

    def counted_metrics(self: RichProgressBar, *args: Any) -> None:
        counts["metrics"] += 1
        gather(self, *args)

    def counted_update(self: RichProgressBar, *args: Any, **kwargs: Any) -> None:
        counts["updates"] += 1
        update(self, *args, **kwargs)

    monkeypatch.setattr(RichProgressBar, "_update_metrics", counted_metrics)
    monkeypatch.setattr(RichProgressBar, "_update", counted_update)
    L.Trainer(
        accelerator="cpu", max_epochs=1, callbacks=[bar], logger=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
    ).fit(Tiny(), loader(40), loader(10))  # fmt: skip
    return counts


def test_a_fit_redraws_far_less_often_than_lightnings_bar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    lightning = redraws(RichProgressBar(), monkeypatch, tmp_path)
    monkeypatch.setattr(module.time, "monotonic", lambda: 100.0)  # the clock stopped: no interval ever passes
    zoo = redraws(TimedProgressBar(refresh_rate=1), monkeypatch, tmp_path)
    monkeypatch.undo()
    assert lightning["metrics"] >= 40 and lightning["updates"] >= 50
    assert zoo["updates"] <= 6, zoo
    assert zoo["metrics"] <= 6, zoo
