"""``data: FashionMNIST from /usr/share/datasets/fashion-mnist (55000 training, ...)``: the line a fit starts with.

A user who names no data folder, or one that is refused, learns from it where the data the run trains on was found
(:meth:`zoo.data.ZooDataModule.describe`).
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from zoo.data import ZooDataModule

__all__ = ["DataSource"]


class DataSource(Callback):
    """Print, on rank zero, where the DataModule read its data and how many images each split holds, once it has
    been set up (before the task's own checks of the data, so that the line is there when one of them fails)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Say where the data came from, once a fit has set the data up."""
        data = getattr(trainer, "datamodule", None)  # set by Lightning at run time
        if stage == "fit" and isinstance(data, ZooDataModule) and trainer.is_global_zero:
            print(f"data: {data.describe()}", flush=True)
