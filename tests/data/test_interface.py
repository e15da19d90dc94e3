"""The contract between DataModules and the tasks and callbacks that read them (``zoo.data.base.ZooDataModule``):
what every DataModule declares, and that every loader comes from the one factory, ``dataloader``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import torch
from conftest import make_cifar10, make_cifar100, make_coco_detection, make_idx_dataset, make_voc_segmentation
from conftest import make_voc_detection as make_voc_detection_files
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, default_collate

import zoo.data
from zoo.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    COCODetectionDataModule,
    FashionMNISTDataModule,
    FolderDataModule,
    ImagesDataModule,
    InMemoryDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    ShapesDataModule,
    TaskKind,
    VOCDetectionDataModule,
    VOCSegmentationDataModule,
    ZooDataModule,
)
from zoo.data.folder import collate_decodable
from zoo.data.targets import collate_detection
from zoo.data.voc import collate_padded
from zoo.errors import DataError

HOOKS = {
    "train": "train_dataloader",
    "val": "val_dataloader",
    "test": "test_dataloader",
    "predict": "predict_dataloader",
}


def _pictures(folder: Path, *, classes: tuple[str, ...] = ("",), count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 256, (20 + index, 24, 3), dtype=np.uint8)).save(
                folder / name / f"{index}.png"
            )
    return folder


def _coco(tmp_path: Path) -> COCODetectionDataModule:
    files = make_coco_detection(tmp_path / "coco")
    return COCODetectionDataModule(
        str(files["train_json"]), str(files["images"]), val_json=str(files["val_json"]), batch_size=2,
        num_workers=0, size=32, max_size=48,
    )  # fmt: skip


#: one small DataModule of each kind, on fabricated files (or none, for the synthetic shapes)
FACTORIES: dict[str, Callable[[Path], ZooDataModule]] = {
    "mnist": lambda tmp: MNISTDataModule(str(make_idx_dataset(tmp / "m", n_train=40, n_test=20)), val_size=8,
                                         batch_size=16, pad=2, flip=True),
    "fashion-mnist": lambda tmp: FashionMNISTDataModule(str(make_idx_dataset(tmp / "f", n_train=40, n_test=20)),
                                                        val_size=0, batch_size=16),
    "kmnist": lambda tmp: KMNISTDataModule(str(make_idx_dataset(tmp / "k", n_train=40, n_test=20)), val_size=8,
                                           batch_size=16),
    "cifar10": lambda tmp: CIFAR10DataModule(str(make_cifar10(tmp / "c", per_batch=10)), val_size=10,
                                             batch_size=16, pad=4, flip=True),
    "cifar100": lambda tmp: (make_cifar100(tmp / "c100"), CIFAR100DataModule(str(tmp / "c100"), val_size=10,
                                                                             batch_size=16))[1],
    "folder": lambda tmp: FolderDataModule(str(_pictures(tmp / "folder" / "train", classes=("cat", "dog")).parent),
                                           image_size=16, batch_size=4, val_size=4, num_workers=0),
    "images": lambda tmp: ImagesDataModule(str(_pictures(tmp / "photos")), size=16, batch_size=2, val_size=2,
                                           num_workers=0, predict_size=16),
    "shapes": lambda tmp: ShapesDataModule("detection", image_size=48, num_train=6, num_val=4, num_test=4,
                                           batch_size=3),
    "shapes-localization": lambda tmp: ShapesDataModule("localization", image_size=48, num_train=6, num_val=4,
                                                        num_test=4, batch_size=3),
    "shapes-segmentation": lambda tmp: ShapesDataModule("segmentation", image_size=48, num_train=6, num_val=4,
                                                        num_test=4, batch_size=3),
    "voc-detection": lambda tmp: VOCDetectionDataModule(str(make_voc_detection_files(tmp / "vd", year="2012",
                                                        splits=("train", "val"))), batch_size=2, num_workers=0,
                                                        size=32, max_size=48),
    "voc-segmentation": lambda tmp: VOCSegmentationDataModule(str(make_voc_segmentation(tmp / "vs")), crop_size=16,
                                                              batch_size=2, num_workers=0, eval_size=20),
    "coco": _coco,
}  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    """Whether two batches hold the same values (tensors, and lists, tuples and dicts of them, and strings)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _batches(loader: Any, seed: int = 0) -> list[Any]:
    torch.manual_seed(seed)  # the same shuffle and augmentation for the two loaders compared
    return list(loader)


def test_every_datamodule_of_the_package_is_covered(tmp_path: Path) -> None:
    exported = {
        obj
        for name in zoo.data.__all__
        if inspect.isclass(obj := getattr(zoo.data, name))
        and issubclass(obj, ZooDataModule)
        and obj not in (ZooDataModule, InMemoryDataModule)  # bases to build on
    }
    assert exported == {type(build(tmp_path / name)) for name, build in FACTORIES.items()}


@pytest.mark.parametrize("name", FACTORIES)
def test_declares_what_tasks_read(name: str, tmp_path: Path) -> None:
    data = FACTORIES[name](tmp_path)
    assert isinstance(data, ZooDataModule)
    assert isinstance(type(data).kinds, frozenset) and type(data).kinds  # declared on the class
    assert data.kinds and data.kinds <= type(data).kinds <= set(get_args(TaskKind))
    data.setup("fit")
    assert all(isinstance(name, str) for name in data.classes)
    assert isinstance(data.num_classes, int) and data.num_classes >= len(data.classes)
    shape = data.image_shape
    assert shape is None or (len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape))
    if data.mean is None:
        assert data.std is None
    else:
        assert data.std is not None and data.mean.shape == data.std.shape == (shape[0] if shape else -1,)
    if "classification" in data.kinds:
        assert data.num_classes == len(data.classes) > 1 and data.mean is not None


def test_shapes_narrow_their_kinds_to_their_mode() -> None:
    assert ShapesDataModule.kinds == {"localization", "detection", "segmentation"}
    for mode in ("localization", "detection", "segmentation"):
        assert ShapesDataModule(mode).kinds == {mode}  # type: ignore[arg-type]
    assert ImagesDataModule.kinds == {"style_transfer"} and ImagesDataModule().classes == ()
    assert VOCSegmentationDataModule.kinds == {"segmentation"}
    assert VOCDetectionDataModule.kinds == COCODetectionDataModule.kinds == {"detection"}


@pytest.mark.parametrize("name", FACTORIES)
def test_every_loader_comes_from_dataloader(name: str, tmp_path: Path) -> None:
    data = FACTORIES[name](tmp_path)
    for split, hook in HOOKS.items():
        # the hooks are the base class's, not copies of loader code in each DataModule
        assert getattr(type(data), hook) is getattr(ZooDataModule, hook), f"{type(data).__name__}.{hook}"
        from_hook = _batches(getattr(data, hook)())
        from_factory = _batches(data.dataloader(split, train=split == "train"))  # type: ignore[arg-type]
        assert _same(from_hook, from_factory), f"{name} {split}"
        assert split == "val" or from_hook, f"{name} {split} is empty"


#: how each DataModule's batches are put together: lists for detection, padding for VOC's whole images
COLLATE = {"folder": collate_decodable, "shapes": collate_detection, "voc-segmentation": collate_padded,
           "coco": collate_detection, "images": default_collate}  # fmt: skip


@pytest.mark.parametrize("name", ["folder", "shapes", "voc-segmentation", "coco", "images"])
def test_dataloader_shuffles_only_for_training(name: str, tmp_path: Path) -> None:
    data = FACTORIES[name](tmp_path)
    train = data.dataloader("train", train=True)
    assert isinstance(train, DataLoader) and isinstance(train.sampler, RandomSampler)
    assert train.batch_size == data.batch_size and train.collate_fn is COLLATE[name]
    for split in ("train", "val", "test", "predict"):
        loader = data.dataloader(split)  # type: ignore[arg-type]
        assert isinstance(loader, DataLoader) and isinstance(loader.sampler, SequentialSampler)
        assert loader.batch_size == (1 if name == "images" and split == "predict" else data.eval_batch_size)
        assert loader.num_workers == data.num_workers and loader.collate_fn is COLLATE[name], split


def test_in_order_batches_repeat_and_predict_is_test(tmp_path: Path) -> None:
    data = FACTORIES["cifar10"](tmp_path)
    first, second = list(data.dataloader("train")), list(data.dataloader("train"))
    assert _same(first, second)  # in order, unaugmented
    assert torch.equal(torch.cat([y for _, y in first]), data.splits["train"][1])
    assert _same(list(data.dataloader("predict")), list(data.dataloader("test")))
    assert not _same(_batches(data.dataloader("train", train=True)), first)


def test_missing_splits(tmp_path: Path) -> None:
    files = make_coco_detection(tmp_path / "coco")
    data = COCODetectionDataModule(str(files["train_json"]), str(files["images"]), num_workers=0)
    assert data.val_dataloader() == []  # no validation: Lightning skips it
    for split in ("test", "predict"):
        with pytest.raises(DataError, match=f"no {split} data"):
            data.dataloader(split)  # type: ignore[arg-type]
    assert FACTORIES["fashion-mnist"](tmp_path).val_dataloader() == []  # val_size=0
