"""Fabricated datasets in the real on-disk formats, written under pytest's tmp_path, and helpers for counting models."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import pickle
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from zoo.cli import speed
from zoo.data import VOC_CLASSES
from zoo.models import weights

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# zoo's measurements of the host (zoo.cli.precision) go to a cache of the tests', not the user's
os.environ.setdefault("ZOO_CACHE_DIR", str(Path(tempfile.gettempdir()) / "zoo-tests-cache"))


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module of that name (``benchmarks/`` is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finish(process: subprocess.Popen[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for a process started with its outputs piped; what ``subprocess.run`` would have returned. One that
    outlives ``timeout`` is killed, and the timeout raised."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


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


def make_colour_folders(folder: Path, *, per_class: int = 12) -> Path:
    """``folder/class<k>/<i>.png``: three classes of 40x30 RGB images, each class bright in its own channel."""
    for label in range(3):
        (folder / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            pixels = np.full((30, 40, 3), 20 + index, dtype=np.uint8)
            pixels[..., label] = 200
            Image.fromarray(pixels).save(folder / f"class{label}" / f"{index}.png")
    return folder


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


#: torch's own thread count, one a core, before any test changes it
TORCH_THREADS = torch.get_num_threads()
#: the thread count the tests run with, and when it was chosen (see _threads_for_the_load)
_threads = {"count": TORCH_THREADS, "chosen": -float("inf")}


def free_threads() -> int:
    """As many threads as there are cores other processes leave free, measured over a tenth of a second, as zoo's
    commands choose theirs (zoo.cli.speed). Torch's threads wait for each other after every operation, so one that
    shares its core with another job stalls them all: on two cores beside a training job the tests of the networks
    took four times as long with two threads as with one, and on idle cores a third less."""
    return speed.free_threads(TORCH_THREADS, seconds=0.1).value


@pytest.fixture(autouse=True)
def _threads_for_the_load() -> Iterator[None]:
    """Torch's threads in this process: :func:`free_threads`, measured again at most every 20 s; set again
    afterwards, for the module fixtures of the tests that follow, since zoo's commands run here set their own."""
    if time.monotonic() - _threads["chosen"] > 20:
        _threads["count"], _threads["chosen"] = free_threads(), time.monotonic()
    torch.set_num_threads(_threads["count"])
    yield
    torch.set_num_threads(_threads["count"])


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


def make_voc_segmentation(folder: Path, *, images: int = 4) -> Path:
    """``VOCdevkit/VOC2012`` with JPEGs, palette PNG masks (background, a person, a border of 255) and the
    ``ImageSets/Segmentation`` train and val lists, as the official archive lays them out."""
    base = folder / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"2008_{index:06d}" for index in range(1, images + 1)]
    for image_id in ids:
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{image_id}.jpg"
        )
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[5:20, 10:30] = 255
        mask[6:19, 11:29] = 15
        png = Image.fromarray(mask, mode="P")
        png.putpalette([v for i in range(256) for v in (i, i, i)])
        png.save(base / "SegmentationClass" / f"{image_id}.png")
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[: images // 2]) + "\n")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids[images // 2 :]) + "\n")
    return folder


#: small settings that keep a detector's step to a fraction of a second on a CPU
DETECTION_SMALL: dict[str, Any] = {
    "min_size": 64,
    "max_size": 64,
    "representation_size": 32,
    "rpn_pre_nms_top_n_train": 200,
    "rpn_post_nms_top_n_train": 50,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 20,
    "box_batch_size_per_image": 16,
}


def make_voc_detection(
    root: Path, *, year: str = "2007", splits: tuple[str, ...] = ("trainval", "test")
) -> Path:
    """``VOCdevkit/VOC<year>`` with four 64x48 JPEGs, their XML and the ``ImageSets/Main`` lists ``splits``."""
    base = root / "VOCdevkit" / f"VOC{year}"
    ids = [f"00000{i}" for i in range(1, 5)]
    rng = np.random.default_rng(0)
    for index, image_id in enumerate(ids):
        (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{image_id}.jpg"
        )
        name = VOC_CLASSES[index * 5]
        (base / "Annotations").mkdir(exist_ok=True)
        (base / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>64</width><height>48</height><depth>3</depth></size><object><name>{name}"
            "</name><difficult>0</difficult><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>40</xmax><ymax>30</ymax>"
            "</bndbox></object></annotation>"
        )
    (base / "ImageSets" / "Main").mkdir(parents=True)
    for split in splits:
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def make_coco_detection(root: Path) -> dict[str, Path]:
    """A COCO-format training and validation json over four 64x48 JPEGs, with two categories."""
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(1)
    entries, annotations = [], []
    for index in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(images / f"{index}.jpg")
        entries.append({"id": index + 1, "file_name": f"{index}.jpg", "width": 64, "height": 48})
        annotations.append({"id": 10 + index, "image_id": index + 1, "category_id": 18 if index % 2 else 1,
                            "bbox": [5, 6, 30, 20], "iscrowd": 0, "area": 600})  # fmt: skip
    data = {"images": entries, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}  # fmt: skip
    files = {"train_json": root / "train.json", "val_json": root / "val.json", "images": images}
    for key in ("train_json", "val_json"):
        files[key].write_text(json.dumps(data))
    return files


def small_model(**extra: Any) -> list[str]:
    """Options replacing a recipe's model_kwargs: small images, few proposals, no ImageNet weights to download."""
    return ["--model.init_args.model_kwargs", json.dumps({**DETECTION_SMALL, **extra})]


def detection_recipe_args(recipe: str, tmp_path: Path) -> list[str]:
    """What each detection recipe needs to run in seconds on fabricated data."""
    if recipe == "fasterrcnn_shapes":
        return ["--data.init_args.num_train", "16", "--data.init_args.num_val", "4",
                "--data.init_args.num_test", "4"]  # fmt: skip
    if recipe == "fasterrcnn_voc":
        root = make_voc_detection(tmp_path / "voc")
        return ["--data.init_args.root", str(root), "--data.init_args.num_workers", "0", *small_model()]
    files = make_coco_detection(tmp_path / "coco")
    return [
        "--data.init_args.train_json", str(files["train_json"]), "--data.init_args.train_images", str(files["images"]),
        "--data.init_args.val_json", str(files["val_json"]), "--data.init_args.val_images", str(files["images"]),
        "--data.init_args.num_workers", "0", "--model.init_args.num_classes", "3", *small_model(),
    ]  # fmt: skip


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tests/models: a private weights table and download folder for one test; returns the folder of served files."""
    monkeypatch.setattr(weights, "_WEIGHTS", {k: dict(v) for k, v in weights._WEIGHTS.items()})
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    return served
