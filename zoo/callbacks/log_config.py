"""Send the run's resolved configuration to every logger, so a W&B run shows exactly what was trained."""

from __future__ import annotations

from typing import Any

import lightning as L

__all__ = ["LogConfig"]


class LogConfig(L.Callback):
    """Log ``config`` (a nested dict: model, data, trainer, optimizer, ...) as hyperparameters when fit starts.

    Loggers write on rank zero only, so under DDP the run gets the config once.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hand the config to each of the trainer's loggers."""
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config)
