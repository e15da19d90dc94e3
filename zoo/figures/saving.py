"""Where a figure goes: a PNG in the run folder's ``figures/``, and an image in every logger that takes one.

The figure callbacks (:mod:`zoo.callbacks`) and the tasks that draw their own figures (autoencoder, style
transfer) hand their pictures to :func:`save_figure`, on rank zero only. It writes
``<run folder>/figures/<when>-<name>.png`` and sends the image to each of the trainer's loggers: W&B
(``WandbLogger.log_image``) and TensorBoard (``add_image``) get it under the key ``<name>`` at the current global
step; other loggers, or no logger, leave the PNG alone.

``<when>`` is ``epoch004`` (0-based, as in Lightning's checkpoint names) during a fit, and the checkpoint's name
(``best``, ``last``) when a checkpoint is validated or tested on its own. A file is never overwritten: a second
figure with the same name (a resumed run drawing epoch 4 again) gets ``-2``, ``-3``, ...

This is the one module of :mod:`zoo.figures` that knows about a ``Trainer``; it is not a callback, so tasks use
it without importing :mod:`zoo.callbacks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image

__all__ = [
    "EVERY_N_EPOCHS",
    "HasRunFolder",
    "figure_prefix",
    "run_folder",
    "save_figure",
    "should_draw",
    "write_png",
]

#: how often the figure callbacks draw during a fit, unless told otherwise (they also draw at the last epoch)
EVERY_N_EPOCHS = 5


@runtime_checkable
class HasRunFolder(Protocol):
    """A callback that knows the run's folder (the zoo CLI's :class:`~zoo.callbacks.LastCheckpoint`)."""

    @property
    def run_folder(self) -> Path:
        """The folder of the run, where its checkpoints and figures go."""
        ...


def should_draw(trainer: L.Trainer, every_n_epochs: int) -> bool:
    """Whether a figure is drawn at the end of this evaluation epoch.

    Never during the sanity check; during a fit, every ``every_n_epochs`` epochs and at the last epoch; always
    when a model is validated or tested on its own (after the fit, the CLI evaluates the best checkpoint, which
    gives the final figures even when early stopping cut the fit short). The answer is the same on every rank.
    """
    if trainer.sanity_checking:
        return False
    if trainer.state.fn != TrainerFn.FITTING:
        return True
    done = trainer.current_epoch + 1
    last = trainer.max_epochs is not None and trainer.max_epochs > 0 and done >= trainer.max_epochs
    return last or (every_n_epochs > 0 and done % every_n_epochs == 0)


def run_folder(trainer: L.Trainer) -> Path:
    """The folder a run's figures go under.

    The run folder of a callback that knows it (:class:`HasRunFolder`: the zoo CLI's ``LastCheckpoint``) during a
    fit; the folder of the evaluated checkpoint when it is a run folder (it holds ``config.yaml``:
    ``python -m zoo.test``); otherwise what Lightning calls the log dir (the first logger's folder, else
    ``default_root_dir``).
    """
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, HasRunFolder):
            return callback.run_folder
    if trainer.ckpt_path and (Path(trainer.ckpt_path).parent / "config.yaml").is_file():
        return Path(trainer.ckpt_path).parent
    if trainer.loggers:
        logger = trainer.loggers[0]
        folder = logger.log_dir if isinstance(logger, TensorBoardLogger) else logger.save_dir
        if folder:
            return Path(folder)
    return Path(trainer.default_root_dir)


def figure_prefix(trainer: L.Trainer) -> str:
    """``epoch004`` during a fit; the checkpoint's name (``best``) when one is evaluated; else the epoch."""
    if trainer.state.fn != TrainerFn.FITTING and trainer.ckpt_path:
        return Path(trainer.ckpt_path).stem
    return f"epoch{trainer.current_epoch:03d}"


def write_png(image: Image.Image, path: Path, *, overwrite: bool = False) -> Path:
    """Write ``image`` as a PNG at ``path``, creating folders.

    Args:
        image: the picture.
        path: where to write it.
        overwrite: when False and ``path`` exists, write ``<stem>-2.png`` (then ``-3``, ...) instead.

    Returns:
        The file written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, attempt = path, 1
    while True:
        try:
            with open(candidate, "wb" if overwrite else "xb") as file:
                image.save(file, format="PNG")
            return candidate
        except FileExistsError:
            attempt += 1
            candidate = path.with_name(f"{path.stem}-{attempt}{path.suffix}")


def save_figure(trainer: L.Trainer, image: Image.Image, name: str) -> Path:
    """Save ``image`` as ``figures/<prefix>-<name>.png`` in the run folder and send it to every logger.

    Call on rank zero only.

    Args:
        trainer: the running trainer (its loggers, step and run folder).
        image: the figure.
        name: what it shows, also its key in the loggers: ``val/confusion``; a ``/`` becomes ``-`` in the
            file name.

    Returns:
        The PNG written.
    """
    stem = f"{figure_prefix(trainer)}-{name.replace('/', '-')}"
    path = write_png(image, run_folder(trainer) / "figures" / f"{stem}.png")
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=name, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(name, np.asarray(image.convert("RGB")), step, dataformats="HWC")
    return path
