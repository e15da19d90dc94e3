"""What a task logs for an epoch equals what the epoch's batches give, computed here by hand."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from zoo.tasks import ClassificationTask
from zoo.tasks.base import Stage
from zoo.tasks.outputs import ClassificationOutputs


class Recording(ClassificationTask):
    """Keeps every training batch's loss, batch size, logits and labels, as the step computed them; logs a second
    training term, twice the loss, as a task with several loss terms does."""

    def on_fit_start(self) -> None:
        self.seen: list[tuple[float, int, Tensor, Tensor]] = []

    def step(self, batch: tuple[Tensor, Tensor], stage: Stage) -> ClassificationOutputs:
        outputs = super().step(batch, stage)
        loss = outputs["loss"]
        self.log_loss(stage, 2 * loss, len(batch[1]), name="double")
        if stage == "train":  # the logits the metrics were given, as the step returns them
            self.seen.append((loss.item(), len(batch[1]), outputs["logits"].detach(), outputs["target"]))
        return outputs


# 71 samples: 36 batches, the last of 1; 64: exactly 32 (the training metric inputs are passed on at the step checks,
# every 5 steps and at the epoch's last batch)
@pytest.mark.parametrize("samples", [71, 64])
def test_train_loss_and_accuracy_of_the_epoch_are_those_of_all_its_batches(samples: int) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(samples, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    loader = DataLoader(TensorDataset(images, labels), batch_size=2)
    torch.manual_seed(0)
    task = Recording("mlp", model_kwargs={"image_size": 8, "hidden": 16})
    task.configure_optimizers = lambda: torch.optim.SGD(task.parameters(), lr=0.5)  # type: ignore[method-assign]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=5)  # fmt: skip
    trainer.fit(task, train_dataloaders=loader)

    losses = torch.tensor([loss for loss, _, _, _ in task.seen])
    sizes = torch.tensor([size for _, size, _, _ in task.seen], dtype=torch.float32)
    assert len(task.seen) == len(loader)
    assert losses.std() > 0.01  # the weights moved: a plain mean of equal values would prove nothing
    logged = trainer.callback_metrics
    assert logged["train_loss_epoch"].item() == pytest.approx(
        (losses * sizes).sum().item() / samples, rel=1e-6
    )
    # a term other than the loss: the epoch's mean only, under its own name
    assert logged["train_double"].item() == pytest.approx(2 * logged["train_loss_epoch"].item(), rel=1e-6)
    assert not {"train_double_step", "train_double_epoch"} & set(logged)
    last_logged_step = len(loader) // 5 * 5  # the loggers' steps: every 5th
    assert logged["train_loss_step"].item() == pytest.approx(losses[last_logged_step - 1].item(), rel=1e-6)
    predicted = torch.cat([logits.argmax(1) for _, _, logits, _ in task.seen])
    truth = torch.cat([labels for _, _, _, labels in task.seen])
    assert logged["train_acc"].item() == pytest.approx((predicted == truth).float().mean().item(), abs=1e-6)
