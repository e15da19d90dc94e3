"""A data folder the user names is used or refused, never replaced by another copy of the data; where the data was
found is said in one line (``ZooDataModule.describe``), for every DataModule in zoo.data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    make_cifar10,
    make_cifar100,
    make_coco_detection,
    make_idx_dataset,
    make_voc_detection,
    make_voc_segmentation,
)
from PIL import Image

from zoo.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    COCODetectionDataModule,
    FashionMNISTDataModule,
    FolderDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    ShapesDataModule,
    VOCDetectionDataModule,
    VOCSegmentationDataModule,
    ZooDataModule,
)
from zoo.data.base import dataset_search_dirs
from zoo.data.images import ImagesDataModule
from zoo.errors import DataError

#: the DataModules that look for a dataset by name: how to make one, and how to fabricate its files in a folder
SEARCHED: dict[str, tuple[Callable[..., ZooDataModule], Callable[[Path], object]]] = {
    "mnist": (lambda root: MNISTDataModule(root, val_size=10), lambda f: make_idx_dataset(f, n_train=40, n_test=10)),
    "fashion-mnist": (lambda root: FashionMNISTDataModule(root, val_size=10),
                      lambda f: make_idx_dataset(f, n_train=40, n_test=10)),
    "kmnist": (lambda root: KMNISTDataModule(root, val_size=10), lambda f: make_idx_dataset(f, n_train=40, n_test=10)),
    "cifar10": (lambda root: CIFAR10DataModule(root, val_size=10), lambda f: make_cifar10(f, per_batch=10)),
    "cifar100": (lambda root: CIFAR100DataModule(root, val_size=10), lambda f: make_cifar100(f, train=30, test=10)),
    "voc-segmentation": (lambda root: VOCSegmentationDataModule(root, num_workers=0), make_voc_segmentation),
    "voc-detection": (lambda root: VOCDetectionDataModule(root, year="2007", train_split="trainval",
                                                          val_split="test", num_workers=0), make_voc_detection),
}  # fmt: skip
#: the folder each is looked for in under a system dataset folder
SYSTEM_NAME = {"voc-segmentation": "voc", "voc-detection": "voc"}


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A system dataset folder holding a copy of every searched dataset, as Debian's dataset packages would."""
    folder = tmp_path / "system"
    for name, (_, fabricate) in SEARCHED.items():
        fabricate(folder / SYSTEM_NAME.get(name, name))
    monkeypatch.setattr("zoo.data.base.SYSTEM_DATA_DIRS", (folder,))
    return folder


@pytest.mark.parametrize("name", SEARCHED)
@pytest.mark.parametrize("root", ["empty", "missing", "file"])
def test_a_named_root_without_the_data_is_refused_not_replaced(
    name: str, root: str, system: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder")
    data = SEARCHED[name][0](str(tmp_path / root))
    expected = {"empty": "the only place searched", "missing": "does not exist", "file": "is a file"}[root]
    with pytest.raises(DataError, match=expected) as refused:
        data.setup("fit")
    assert str(system) not in str(refused.value)  # the system copy is neither used nor offered
    assert data.source is None


@pytest.mark.parametrize("name", SEARCHED)
def test_the_named_root_is_used_and_said(name: str, system: Path, tmp_path: Path) -> None:
    make, fabricate = SEARCHED[name]
    fabricate(tmp_path / "mine")
    data = make(str(tmp_path / "mine"))
    data.setup("fit")
    assert data.source is not None and Path(data.source).is_relative_to(tmp_path / "mine")
    line = data.describe()
    assert line.startswith(f"{type(data).__name__.removesuffix('DataModule')} from {data.source} (")
    assert "training" in line and "test" in line and str(system) not in line


@pytest.mark.parametrize("name", SEARCHED)
def test_without_a_root_the_system_copy_is_found_and_said(name: str, system: Path) -> None:
    data = SEARCHED[name][0](None)
    data.setup("fit")
    assert data.source is not None and Path(data.source).is_relative_to(system / SYSTEM_NAME.get(name, name))
    assert f"from {data.source}" in data.describe()


def test_only_the_named_root_is_searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr("zoo.data.base.SYSTEM_DATA_DIRS", (tmp_path / "system",))
    named = dataset_search_dirs(tmp_path / "mine", "mnist", ("", "MNIST/raw"))
    assert named == [tmp_path / "mine", tmp_path / "mine" / "MNIST/raw"]
    searched = dataset_search_dirs(None, "mnist", ("",))
    assert searched == [tmp_path / "env" / "mnist", tmp_path / "system" / "mnist"]


def test_the_in_memory_counts_follow_the_split(system: Path) -> None:
    data = FashionMNISTDataModule(None, val_size=10)
    data.setup("fit")
    assert (
        data.describe()
        == f"FashionMNIST from {system / 'fashion-mnist'} (30 training, 10 validation, 10 test images)"
    )


def _photos(folder: Path, classes: int = 2, per_class: int = 3) -> Path:
    for label in range(classes):
        (folder / f"c{label}").mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(np.full((12, 12, 3), 40 * index + label, dtype=np.uint8)).save(
                folder / f"c{label}" / f"{index}.png"
            )
    return folder


@pytest.mark.parametrize("root", ["empty", "missing", "file"])
def test_folder_and_images_refuse_a_root_without_images(root: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder")
    expected = {"empty": "holds no", "missing": "does not exist", "file": "is a file"}[root]
    with pytest.raises(DataError, match=expected):
        FolderDataModule(str(tmp_path / root), num_workers=0).setup("fit")
    expected = {"empty": "no images", "missing": "does not exist", "file": "is a file"}[root]
    with pytest.raises(DataError, match=expected):
        ImagesDataModule(str(tmp_path / root), num_workers=0).setup("fit")


def test_folder_images_coco_and_shapes_say_where_their_data_is(tmp_path: Path) -> None:
    folder = FolderDataModule(str(_photos(tmp_path / "photos")), num_workers=0, val_size=2)
    folder.setup("fit")
    assert folder.describe() == f"Folder from {tmp_path / 'photos'} (4 training, 2 validation, 2 test images)"
    images = ImagesDataModule(str(_photos(tmp_path / "content")), num_workers=0, val_size=2)
    images.setup("fit")
    assert (
        images.describe() == f"Images from {tmp_path / 'content'} (4 training, 2 validation, 2 test images)"
    )
    samples = ImagesDataModule(None, num_workers=0, val_size=1)
    samples.setup("fit")
    assert samples.describe().startswith("Images from scikit-image's sample photos (3 training")
    files = make_coco_detection(tmp_path / "coco")
    coco = COCODetectionDataModule(
        str(files["train_json"]), str(files["images"]), val_json=str(files["val_json"]), num_workers=0
    )
    coco.setup("fit")
    assert coco.describe().startswith(
        f"COCODetection from {files['train_json']}, {files['val_json']} (4 training"
    )
    shapes = ShapesDataModule(num_train=4, num_val=2, num_test=2)
    shapes.setup("fit")
    assert shapes.describe() == "Shapes, made in memory (4 training, 2 validation, 2 test images)"
