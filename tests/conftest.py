"""Fabricated datasets in the real on-disk formats, written under pytest's tmp_path, and helpers for counting models."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``compress``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)
    return path


def make_idx_dataset(
    folder: Path, *, n_train: int = 600, n_test: int = 200, classes: int = 10, seed: int = 0
) -> Path:
    """Four MNIST-layout IDX files whose classes are learnable: each class brightens its own image band."""
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, classes, count).astype(np.uint8)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row = int(label) * 28 // classes
            images[index, row : row + 3, :] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


def make_cifar10(folder: Path, *, per_batch: int = 100, seed: int = 0) -> Path:
    """``cifar-10-batches-py`` with five small training batches and a test batch, pickled like the original."""
    rng = np.random.default_rng(seed)
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32)).astype(np.uint8)
        batch = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": data,
            "filenames": [f"{i}.png" for i in range(per_batch)],
        }
        with open(root / name, "wb") as file:
            pickle.dump(batch, file, protocol=2)
    return folder


def make_cifar100(folder: Path, *, train: int = 120, test: int = 30, seed: int = 3) -> dict[str, dict]:
    """``cifar-100-python/train`` and ``test``, pickled like the original; returns what was written."""
    rng = np.random.default_rng(seed)
    root = folder / "cifar-100-python"
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in (("train", train), ("test", test)):
        fine = rng.integers(0, 100, count)
        fine[0] = 99
        written[name] = {
            "filenames": [f"{i}.png" for i in range(count)],
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
            "data": rng.integers(0, 256, (count, 3072)).astype(np.uint8),
        }
        (root / name).write_bytes(pickle.dumps(written[name], protocol=2))
    return written


def num_params(model: nn.Module) -> int:
    """Parameters of a network, the figure papers and torchvision publish."""
    return sum(p.numel() for p in model.parameters())


def on_meta(build: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    """Build a model without allocating or initialising its weights (to count parameters, or to take another's)."""
    with torch.device("meta"):
        return build(**kwargs)


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A folder with a small fabricated dataset in the MNIST IDX layout."""
    return make_idx_dataset(tmp_path / "idx")


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A folder holding a small fabricated ``cifar-10-batches-py``."""
    return make_cifar10(tmp_path / "cifar")


@pytest.fixture(autouse=True)
def _no_system_data(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Tests see only their own files unless marked ``real_data``: no $ZOO_DATA_DIR, no system folders."""
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    if "real_data" not in request.keywords:
        monkeypatch.setattr("zoo.data.base.SYSTEM_DATA_DIRS", ())


def require_fashion_mnist() -> Path:
    """The system Fashion-MNIST folder; skip without it, except under CI=true where it must be installed."""
    if not (FASHION_MNIST_SYSTEM / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Debian's dataset-fashion-mnist is not installed")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_MNIST_SYSTEM
