"""Callbacks, one per file, usable with any logger.

The figure callbacks (:class:`FeatureMaps`, :class:`Filters`, :class:`ConfusionMatrix`, :class:`PredictionGrid`,
:class:`PredictionOverlays`) draw with :mod:`zoo.figures` and save through :mod:`zoo.figures.saving`: a PNG in
the run folder's ``figures/``, and an image in W&B or TensorBoard. The evaluation figures read what the task's
steps return (:mod:`zoo.tasks.outputs`). :class:`PredictionWriter` writes what ``trainer.predict`` computed.
:class:`EpochMetrics` writes the run's ``metrics.csv``; :class:`NetworkSummary` is the model summary without the
metric modules; :class:`TimedProgressBar` is Rich's progress bar, redrawn a few times a second.
"""

from zoo.callbacks.atomic_checkpoint_io import AtomicCheckpointIO
from zoo.callbacks.confusion_matrix import ConfusionMatrix
from zoo.callbacks.epoch_metrics import EpochMetrics
from zoo.callbacks.feature_maps import FeatureMaps
from zoo.callbacks.filters import Filters
from zoo.callbacks.last_checkpoint import LastCheckpoint
from zoo.callbacks.log_config import LogConfig
from zoo.callbacks.network_summary import NetworkSummary
from zoo.callbacks.overlays import PredictionOverlays
from zoo.callbacks.prediction_grid import PredictionGrid
from zoo.callbacks.prediction_writer import PredictionWriter
from zoo.callbacks.progress_bar import TimedProgressBar

__all__ = [
    "AtomicCheckpointIO",
    "ConfusionMatrix",
    "EpochMetrics",
    "FeatureMaps",
    "Filters",
    "LastCheckpoint",
    "LogConfig",
    "NetworkSummary",
    "PredictionGrid",
    "PredictionOverlays",
    "PredictionWriter",
    "TimedProgressBar",
]
