"""Weights records read from files rather than from the table: an exported file, a run's checkpoint, W&B.

* A ``.safetensors`` file written by ``zoo export`` names its model, classes, channels, builder options,
  metrics and (when the exporter knew them) categories and preprocessing in its header; a hash given with it
  (``PATH#sha256=<hex>`` or a ``PATH.sha256`` file) is checked when it is loaded.
* A checkpoint written by ``zoo fit`` holds them in its hyperparameters; a W&B model artifact holds one.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

from zoo.models.preprocess import Preprocess
from zoo.models.weights_files import (
    HASH_SUFFIX,
    StateDict,
    WeightsError,
    download_artifact,
    read_export_metadata,
    split_sha256,
)
from zoo.models.weights_record import Weights

__all__ = ["WANDB_PREFIX", "from_reference", "is_reference"]

WANDB_PREFIX = "wandb:"  # how a tag names a W&B model artifact

_PREFIX = "net."  # where a task keeps its network in a checkpoint's state dict


def is_reference(tag: str) -> bool:
    """Whether a tag names a file or an artifact rather than a registered set of weights."""
    return (
        tag.startswith(WANDB_PREFIX)
        or tag.endswith((".ckpt", ".safetensors"))
        or HASH_SUFFIX in tag
        or (os.sep in tag)
    )


def from_reference(model: str | None, reference: str) -> Weights:
    """The record of the file or artifact a reference names (see :func:`zoo.models.weights.find_weights`).

    Args:
        model: The model asked for (the file must hold one); ``None`` takes the file's.
        reference: What :func:`is_reference` accepts.

    Raises:
        WeightsError: The file cannot be had or read, or holds another model.
    """
    if reference.startswith(WANDB_PREFIX):
        return _from_checkpoint(model, download_artifact(reference.removeprefix(WANDB_PREFIX)), reference)
    if reference.partition(HASH_SUFFIX)[0].endswith(".safetensors"):
        return _from_export(model, reference)
    return _from_checkpoint(model, Path(reference), reference)


def _from_checkpoint(model: str | None, path: Path, tag: str) -> Weights:
    """Weights taken from a checkpoint written by ``python -m zoo.fit``: its network, classes and options."""
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    stat = path.stat()  # a rewritten checkpoint (a resumed run's) is read again
    return _checkpoint_weights(model, path, tag, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)  # create_model and then the builder resolve the same tag
def _checkpoint_weights(model: str | None, path: Path, tag: str, mtime_ns: int, size: int) -> Weights:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hparams = checkpoint["hyper_parameters"]
        trained = str(hparams["model"])
    except Exception as error:  # unpickling refused, not a zoo checkpoint, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"{path} is not a zoo checkpoint that can be read safely: {reason}") from None
    if model is not None and trained != model:
        raise WeightsError(f"checkpoint {path} holds a '{trained}', not a '{model}'")
    return Weights(
        model=trained,
        tag=tag,
        file=str(path.resolve()),
        sha256="",  # no published hash: fetch checks nothing
        num_classes=int(hparams["num_classes"]),
        in_channels=int(hparams["in_channels"]),
        model_kwargs=dict(hparams.get("model_kwargs") or {}),
        convert=_task_state_dict,
        source=f"zoo checkpoint {path}",
    )


def _task_state_dict(state: StateDict) -> StateDict:
    """The network's part of a task's state dict, without the task's ``net.`` prefix."""
    return {k.removeprefix(_PREFIX): v for k, v in state.items() if k.startswith(_PREFIX)}


def _from_export(model: str | None, reference: str) -> Weights:
    """Weights from a safetensors file written by ``zoo export``: its model, classes and options from its header."""
    path, sha256 = split_sha256(reference)
    meta = read_export_metadata(path)
    trained = meta["model"]
    if model is not None and trained != model:
        raise WeightsError(f"weights file {path} holds a '{trained}', not a '{model}'")
    try:
        num_classes, in_channels = int(meta["num_classes"]), int(meta["in_channels"])
        model_kwargs = json.loads(meta.get("model_kwargs") or "{}")
        metrics = json.loads(meta.get("metrics") or "{}")
        categories = json.loads(meta.get("categories") or "null")
        preprocess = json.loads(meta.get("preprocess") or "null")
        if not isinstance(model_kwargs, dict) or not isinstance(metrics, dict):
            raise ValueError("model_kwargs and metrics must be JSON objects")
        if categories is not None and not (
            isinstance(categories, list) and all(isinstance(c, str) for c in categories)
        ):
            raise ValueError("categories must be a JSON list of names")
        return Weights(
            model=trained,
            tag=reference,
            file=str(path.resolve()),
            sha256=sha256,  # "" when no hash was given: nothing to check it against
            num_classes=num_classes,
            in_channels=in_channels,
            metrics={str(k): float(v) for k, v in metrics.items()},
            preprocess=None
            if preprocess is None
            else Preprocess(
                resize=int(preprocess["resize"]),
                crop=int(preprocess["crop"]),
                mean=tuple(float(v) for v in preprocess["mean"]),
                std=tuple(float(v) for v in preprocess["std"]),
            ),
            categories=None if categories is None else tuple(categories),
            model_kwargs=model_kwargs,
            source=meta.get("source", str(path)),
        )
    except (ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
        raise WeightsError(f"weights file {path} has malformed zoo metadata: {error}") from None
