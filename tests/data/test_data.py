"""The DataModules, on small files fabricated in the real formats: IDX, CIFAR pickles, image folders."""

from __future__ import annotations

import builtins
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_cifar10, make_cifar100, make_idx_dataset, require_fashion_mnist, write_idx
from PIL import Image

import zoo.data.base
from zoo.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    FolderDataModule,
    InMemoryLoader,
    MNISTDataModule,
    ShardSampler,
)
from zoo.data.memory import crop_and_flip
from zoo.data.readers.cifar import read_cifar_batch
from zoo.data.readers.idx import read_idx
from zoo.errors import DataError


def _fashion(root: Path | str | None, **kwargs: Any) -> FashionMNISTDataModule:
    kwargs.setdefault("val_size", 0)
    kwargs.setdefault("batch_size", 64)
    return FashionMNISTDataModule(None if root is None else str(root), **kwargs)


def _rows(images: torch.Tensor, labels: torch.Tensor) -> list[bytes]:
    """Each sample as bytes (image then label), sorted: a multiset to compare splits with."""
    flat = images.reshape(len(images), -1).numpy()
    return sorted(
        row.tobytes() + bytes([int(label)]) for row, label in zip(flat, labels.tolist(), strict=True)
    )


def _names_file(path: Path) -> str:
    return re.escape(str(path))


# --- IDX ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    image_path = write_idx(tmp_path / "images-idx3-ubyte", images, compress=compress)
    label_path = write_idx(tmp_path / "labels-idx1-ubyte", labels, compress=compress)
    assert image_path.name.endswith(".gz") == compress
    read_images, read_labels = read_idx(image_path), read_idx(label_path)
    assert read_images.dtype == torch.uint8 and read_images.shape == (7, 28, 28)
    assert np.array_equal(read_images.numpy(), images)
    assert np.array_equal(read_labels.numpy(), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_datamodule_shapes_and_dtypes(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(2)
    files = {}
    for prefix, count in (("train", 40), ("t10k", 12)):
        files[prefix] = rng.integers(0, 256, (count, 28, 28)).astype(np.uint8), rng.integers(0, 10, count)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", files[prefix][0], compress=compress)
        write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte", files[prefix][1].astype(np.uint8), compress=compress
        )
    dm = _fashion(tmp_path)
    dm.setup()
    images, labels = dm.splits["train"]
    assert images.shape == (40, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (40,) and labels.dtype == torch.int64
    assert _rows(images, labels) == _rows(
        torch.from_numpy(files["train"][0]), torch.from_numpy(files["train"][1])
    )
    test_images, test_labels = dm.splits["test"]
    assert test_images.shape == (12, 1, 28, 28) and test_labels.dtype == torch.int64
    assert torch.equal(test_images[:, 0], torch.from_numpy(files["t10k"][0]))
    assert torch.equal(test_labels, torch.from_numpy(files["t10k"][1]).long())
    assert dm.image_shape == (1, 28, 28)


def test_torchvision_layout_is_found(tmp_path: Path) -> None:
    raw = make_idx_dataset(tmp_path / "FashionMNIST" / "raw", n_train=30, n_test=10)
    dm = _fashion(tmp_path)
    assert dm.find_folder() == raw
    dm.setup()
    assert len(dm.splits["train"][0]) == 30 and len(dm.splits["test"][0]) == 10


def test_plain_file_is_preferred_over_gz(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=30, n_test=10)  # .gz files
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.full((10, 28, 28), 7, np.uint8), compress=False)
    dm = _fashion(tmp_path)
    dm.setup()
    assert bool((dm.splits["test"][0] == 7).all())


def test_read_idx_truncated_gz(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.ones((20, 28, 28), np.uint8) * 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=_names_file(path)):
        read_idx(path)


def test_read_idx_not_gzip_despite_name(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match=_names_file(path)):
        read_idx(path)


@pytest.mark.parametrize(
    "header",
    [b"\x00\x00\x0d\x03", b"\x01\x00\x08\x03", b"\x00\x00\x08\x00", b"\x00\x00"],
    ids=["float-type", "nonzero-lead", "zero-dims", "too-short"],
)
def test_read_idx_wrong_magic(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(header + (b"\x00\x00\x00\x02" * 3 + bytes(8) if len(header) == 4 else b""))
    with pytest.raises(DataError, match=_names_file(path) + r".*magic number"):
        read_idx(path)


@pytest.mark.parametrize("change", [-10, 5], ids=["cut-short", "extra-bytes"])
def test_read_idx_size_mismatch(tmp_path: Path, change: int) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), compress=False)
    data = path.read_bytes()
    path.write_bytes(data[:change] if change < 0 else data + bytes(change))
    with pytest.raises(DataError, match=_names_file(path) + r".*\(4, 28, 28\)"):
        read_idx(path)


def test_read_idx_header_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00")
    with pytest.raises(DataError, match=_names_file(path)):
        read_idx(path)


def test_images_and_labels_count_mismatch(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=30, n_test=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, np.uint8), compress=False)
    dm = _fashion(tmp_path)
    with pytest.raises(DataError, match=r"\(30, 28, 28\).*\(29,\)"):
        dm.setup()


def test_labels_beyond_num_classes(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=30, n_test=10)
    labels = np.zeros(30, np.uint8)
    labels[5] = 10
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels, compress=False)
    with pytest.raises(DataError, match="10 classes"):
        _fashion(tmp_path).setup()


def test_test_labels_beyond_num_classes(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=30, n_test=10)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(10, 200, np.uint8), compress=False)
    with pytest.raises(DataError, match="test split"):
        _fashion(tmp_path).setup()


# --- where the files are looked for ---------------------------------------------------------------------


@pytest.fixture
def three_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The dataset with 30 train images in root, 40 in $ZOO_DATA_DIR, 50 in a system folder."""
    places = {"root": tmp_path / "root", "env": tmp_path / "env", "system": tmp_path / "system"}
    make_idx_dataset(places["root"], n_train=30, n_test=5)
    make_idx_dataset(places["env"] / "fashion-mnist", n_train=40, n_test=5)
    make_idx_dataset(places["system"] / "fashion-mnist", n_train=50, n_test=5)
    monkeypatch.setenv("ZOO_DATA_DIR", str(places["env"]))
    monkeypatch.setattr(zoo.data.base, "SYSTEM_DATA_DIRS", (tmp_path / "nothing", places["system"]))
    return places


def _train_count(dm: FashionMNISTDataModule) -> int:
    dm.setup()
    return len(dm.splits["train"][0])


def test_root_beats_env_beats_system(three_places: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    assert _train_count(_fashion(three_places["root"])) == 30
    assert _train_count(_fashion(None)) == 40
    with pytest.raises(DataError, match="does not exist"):  # a root named is used or refused, never replaced
        _train_count(_fashion(tmp_path / "empty"))
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert _train_count(_fashion(None)) == 50
    assert _fashion(None).find_folder() == three_places["system"] / "fashion-mnist"


def test_missing_everywhere_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(zoo.data.base, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    dm = _fashion(None)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message
    for place in (
        tmp_path / "env" / "fashion-mnist",
        tmp_path / "system" / "fashion-mnist",
    ):
        assert str(place) in message
    assert "--data.download" in message and "FashionMNIST/raw" in message
    with pytest.raises(DataError, match=r"--data\.download"):
        dm.setup()


@pytest.mark.parametrize("where", ["root", "env", "home"])
def test_download_goes_to_root_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    calls: list[Path] = []

    def fake_download(self: FashionMNISTDataModule, folder: Path) -> None:
        calls.append(folder)
        make_idx_dataset(folder / "FashionMNIST" / "raw", n_train=30, n_test=5)  # where torchvision puts it

    monkeypatch.setattr(FashionMNISTDataModule, "download_to", fake_download)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if where != "home":
        monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    dm = _fashion(tmp_path / "root" if where == "root" else None, download=True)
    dm.prepare_data()
    expected = {
        "root": tmp_path / "root",
        "env": tmp_path / "env" / "fashion-mnist",
        "home": tmp_path / "home" / ".cache" / "zoo" / "fashion-mnist",
    }[where]
    assert calls == [expected]
    assert _train_count(dm) == 30
    dm.prepare_data()  # found now: no second download
    assert len(calls) == 1


def test_no_download_when_present_or_not_asked(idx_root: Path, tmp_path: Path, monkeypatch) -> None:
    def fail(self: Any, folder: Path) -> None:
        raise AssertionError("download_to must not be called")

    monkeypatch.setattr(FashionMNISTDataModule, "download_to", fail)
    _fashion(idx_root, download=True).prepare_data()
    with pytest.raises(DataError, match="does not exist"):
        _fashion(tmp_path / "none", download=False).prepare_data()


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self: Any, folder: Path) -> None:
        # what torchvision raises when every mirror fails: several lines
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\n"
            "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
        )

    monkeypatch.setattr(MNISTDataModule, "download_to", offline)
    dm = MNISTDataModule(str(tmp_path / "root"), val_size=0, download=True)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message.strip()
    assert "mnist" in message and str(tmp_path / "root") in message and "name resolution" in message


# --- CIFAR ----------------------------------------------------------------------------------------------


def _load_pickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        return pickle.load(file)


def test_cifar10_reads_pickles(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(str(cifar_root), val_size=0, batch_size=50)
    folder = dm.find_folder()
    assert folder == cifar_root / "cifar-10-batches-py"
    images, labels = dm.read_split(folder, train=True)
    assert images.shape == (500, 3, 32, 32) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    batch3 = _load_pickle(folder / "data_batch_3")
    row = batch3["data"][7]
    image = images[200 + 7].numpy()
    assert np.array_equal(image, row.reshape(3, 32, 32))
    assert image[1, 5, 9] == row[1024 + 5 * 32 + 9] and image[2, 31, 0] == row[2048 + 31 * 32]
    assert labels[200 + 7] == batch3["labels"][7]
    expected = [label for i in range(1, 6) for label in _load_pickle(folder / f"data_batch_{i}")["labels"]]
    assert labels.tolist() == expected
    dm.setup()
    assert dm.splits["test"][0].shape == (100, 3, 32, 32)
    assert dm.splits["test"][1].tolist() == _load_pickle(folder / "test_batch")["labels"]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_cifar_truncated_pickle(cifar_root: Path) -> None:
    path = cifar_root / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=_names_file(path)):
        read_cifar_batch(path, "labels")
    with pytest.raises(DataError, match="data_batch_2"):
        CIFAR10DataModule(str(cifar_root), val_size=0).setup()


def test_cifar_wrong_content(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]}))
    with pytest.raises(DataError, match="3072"):
        read_cifar_batch(path, "labels")
    path.write_bytes(pickle.dumps({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1, 2]}))
    with pytest.raises(DataError, match="fine_labels"):
        read_cifar_batch(path, "fine_labels")


class _Payload:
    """Unpickling this calls ``function(argument)``."""

    def __init__(self, function: Any, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.function, (self.argument,)


def _system(marker: Path) -> _Payload:
    return _Payload(os.system, f"echo hi > '{marker}'")


def _eval(marker: Path) -> _Payload:
    return _Payload(builtins.eval, f"open({str(marker)!r}, 'w').write('hi')")


@pytest.mark.parametrize("payload", [_system, _eval], ids=["os.system", "builtins.eval"])
def test_cifar_pickle_that_calls_code_is_refused(tmp_path: Path, payload: Any) -> None:
    # the payload really runs under a plain pickle.load (so the check below means something)
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(payload(control), protocol=2))
    assert control.exists()

    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": payload(marker)}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=_names_file(path)):
        read_cifar_batch(path, "labels")
    assert not marker.exists()


def test_cifar100_layout(tmp_path: Path) -> None:
    written = make_cifar100(tmp_path)
    dm = CIFAR100DataModule(str(tmp_path), val_size=20)
    assert dm.num_classes == 100 and dm.classes[0] == "apple" and dm.classes[-1] == "worm"
    dm.setup()
    assert len(dm.splits["train"][0]) == 100 and len(dm.splits["val"][0]) == 20
    images, labels = dm.splits["test"]
    assert images.shape == (30, 3, 32, 32)
    assert labels.tolist() == written["test"]["fine_labels"]
    assert np.array_equal(images[4].numpy(), written["test"]["data"][4].reshape(3, 32, 32))
    merged = torch.cat([dm.splits["train"][1], dm.splits["val"][1]])
    assert sorted(merged.tolist()) == sorted(written["train"]["fine_labels"])


# --- split and normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("val_size", "n_val"), [(100, 100), (0.25, 150), (0, 0)])
def test_val_size(idx_root: Path, val_size: int | float, n_val: int) -> None:
    dm = _fashion(idx_root, val_size=val_size)
    dm.setup()
    assert len(dm.splits["val"][0]) == len(dm.splits["val"][1]) == n_val
    assert len(dm.splits["train"][0]) == 600 - n_val
    assert len(dm.splits["test"][0]) == 200
    if n_val == 0:
        assert dm.val_dataloader() == []


def test_split_is_seeded_disjoint_and_complete(idx_root: Path) -> None:
    def split(seed: int) -> FashionMNISTDataModule:
        dm = _fashion(idx_root, val_size=100, seed=seed)
        dm.setup()
        return dm

    a, b, c = split(0), split(0), split(1)
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert torch.equal(a.splits["train"][1], b.splits["train"][1])
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])
    train, val = _rows(*a.splits["train"]), _rows(*a.splits["val"])
    assert not set(train) & set(val)
    whole = (
        read_idx(idx_root / "train-images-idx3-ubyte.gz"),
        read_idx(idx_root / "train-labels-idx1-ubyte.gz"),
    )
    assert sorted(train + val) == _rows(*whole)


def test_normalisation_from_train_part_only(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path, n_train=200, n_test=10)
    brightness = np.arange(200, dtype=np.uint8)[:, None, None]  # images far apart, so the halves differ
    write_idx(
        tmp_path / "train-images-idx3-ubyte", np.broadcast_to(brightness, (200, 28, 28)), compress=False
    )
    dm = _fashion(tmp_path, val_size=0.5)
    dm.setup()
    train = dm.splits["train"][0].numpy().astype(np.float64) / 255
    whole = brightness.astype(np.float64) / 255
    assert dm.mean.shape == dm.std.shape == (1,)
    assert dm.mean.item() == pytest.approx(train.mean(), abs=1e-6)
    assert dm.std.item() == pytest.approx(train.std(), abs=1e-6)
    # and not from the whole file, which differs by more than the tolerance
    assert abs(whole.mean() - train.mean()) > 1e-3 or abs(whole.std() - train.std()) > 1e-3


def test_cifar_normalisation_per_channel(cifar_root: Path) -> None:
    dm = CIFAR10DataModule(str(cifar_root), val_size=100)
    dm.setup()
    train = dm.splits["train"][0].numpy().astype(np.float64) / 255
    assert dm.mean.shape == (3,)
    np.testing.assert_allclose(dm.mean.numpy(), train.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(dm.std.numpy(), train.std(axis=(0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize("val_size", [600, 1000, 1.0])
def test_val_size_too_big(idx_root: Path, val_size: int | float) -> None:
    with pytest.raises(DataError, match="val_size"):
        _fashion(idx_root, val_size=val_size).setup()


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="val_size"):
        FashionMNISTDataModule(val_size=-1)
    with pytest.raises(DataError, match="batch_size"):
        FashionMNISTDataModule(batch_size=0)


# --- InMemoryLoader and ShardSampler --------------------------------------------------------------------


def _indexed_loader(n: int = 101, *, batch_size: int = 16, rank: int = 0, world: int = 1, **kwargs: Any):
    """A loader over ``n`` random images whose labels are their indices, to see which samples come out."""
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (n, 1, 8, 8)).astype(np.uint8))
    shuffle = kwargs.pop("shuffle", True)
    sampler = ShardSampler(
        n, shuffle=shuffle, seed=kwargs.pop("sampler_seed", 0), rank=rank, world_size=world
    )
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    return InMemoryLoader(
        images, torch.arange(n), batch_size=batch_size, sampler=sampler, mean=mean, std=std, **kwargs
    )


def _epoch(loader: InMemoryLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_loader_len_and_batches(idx_root: Path) -> None:
    dm = _fashion(idx_root, val_size=100, batch_size=64, eval_batch_size=30)
    dm.setup()
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 8  # ceil(500 / 64)
    assert [len(y) for _, y in batches] == [64] * 7 + [500 - 7 * 64]
    images = torch.cat([x for x, _ in batches])
    assert images.dtype == torch.float32 and images.shape == (500, 1, 28, 28)
    assert all(y.dtype == torch.int64 for _, y in batches)
    assert images.mean().item() == pytest.approx(0, abs=1e-2)
    assert images.std().item() == pytest.approx(1, abs=1e-2)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(dm.splits["train"][1].tolist())
    val = dm.val_dataloader()
    assert len(val) == 4 and [len(y) for _, y in val] == [30, 30, 30, 10]
    assert torch.equal(torch.cat([y for _, y in val]), dm.splits["val"][1])  # evaluation keeps the order
    assert len(dm.test_dataloader()) == 7
    dropped = _fashion(idx_root, val_size=100, batch_size=64, drop_last=True)
    assert len(dropped.train_dataloader()) == len(list(dropped.train_dataloader())) == 7


def test_loader_normalises_with_given_stats() -> None:
    loader = _indexed_loader(shuffle=False)
    x, y = next(iter(loader))
    expected = (loader.images[y].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize(("n", "world"), [(101, 2), (100, 2), (101, 3), (7, 4)])
def test_training_shards_are_disjoint_and_equal(n: int, world: int) -> None:
    shards = []
    for rank in range(world):
        sampler = ShardSampler(n, shuffle=True, seed=5, rank=rank, world_size=world)
        sampler.set_epoch(2)
        shards.append(sampler.indices())
        assert len(sampler) == len(shards[-1])
    assert len({len(s) for s in shards}) == 1
    union = torch.cat(shards).tolist()
    assert len(set(union)) == len(union)  # disjoint
    assert set(union) <= set(range(n)) and len(union) >= n - (world - 1)


def test_training_shards_through_loaders() -> None:
    seen = [torch.cat([y for _, y in _epoch(_indexed_loader(rank=r, world=2), 1)]) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 50
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    assert len(set(seen[0].tolist()) | set(seen[1].tolist())) == 100  # 101 samples: one left out


@pytest.mark.parametrize(("n", "world"), [(11, 3), (10, 2), (2, 4)])
def test_evaluation_shards_cover_everything(n: int, world: int) -> None:
    shards = [ShardSampler(n, shuffle=False, rank=r, world_size=world).indices() for r in range(world)]
    union = torch.cat(shards).tolist()
    assert sorted(union) == list(range(n))
    for rank, shard in enumerate(shards):
        assert len(ShardSampler(n, shuffle=False, rank=rank, world_size=world)) == len(shard)


def test_epochs_permute_differently() -> None:
    sampler = ShardSampler(200, shuffle=True, seed=3)
    sampler.set_epoch(0)
    first = sampler.indices()
    sampler.set_epoch(1)
    second = sampler.indices()
    sampler.set_epoch(0)
    assert torch.equal(sampler.indices(), first)
    assert not torch.equal(first, second)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(200))
    other_seed = ShardSampler(200, shuffle=True, seed=4)
    assert not torch.equal(other_seed.indices(), first)
    loader = _indexed_loader()
    labels = [torch.cat([y for _, y in _epoch(loader, e)]) for e in (0, 1, 0)]
    assert torch.equal(labels[0], labels[2]) and not torch.equal(labels[0], labels[1])


def test_augmentation_is_deterministic_and_changes_images() -> None:
    def batches(seed: int = 0, **kwargs: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return _epoch(_indexed_loader(seed=seed, **kwargs), 3)

    plain = batches()
    augmented = batches(pad=2, flip=True)
    again = batches(pad=2, flip=True)
    reseeded = batches(seed=1, pad=2, flip=True)
    changed = total = 0
    for (x0, y0), (x1, y1), (x2, y2), (_, y3) in zip(plain, augmented, again, reseeded, strict=True):
        assert x1.shape == x0.shape and x1.dtype == torch.float32
        assert torch.equal(y0, y1) and torch.equal(y1, y3)  # augmentation does not reorder the samples
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        changed += int((x1 != x0).flatten(1).any(1).sum())
        total += len(x0)
    assert changed > total // 2
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(augmented, reseeded, strict=True))
    other_epoch = _epoch(_indexed_loader(shuffle=False, pad=2, flip=True), 4)
    same_order = _epoch(_indexed_loader(shuffle=False, pad=2, flip=True), 3)
    assert torch.equal(other_epoch[0][1], same_order[0][1])
    assert not torch.equal(other_epoch[0][0], same_order[0][0])


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (H, W) moved down by ``dy`` and right by ``dx``, zero filled."""
    height, width = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return out


def test_crop_and_flip_by_hand() -> None:
    image = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(_shift(image, 1, 1), [[0, 0, 0, 0], [0, 1, 2, 3], [0, 5, 6, 7]])
    assert np.array_equal(_shift(image, 0, -1), [[2, 3, 4, 0], [6, 7, 8, 0], [10, 11, 12, 0]])
    batch = torch.from_numpy(np.stack([image, image + 100])[None]).repeat(64, 1, 1, 1)  # (64, 2, 3, 4)

    flipped = crop_and_flip(batch, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    mirrored = batch.flip(3)
    assert torch.equal(mirrored[0, 0, 0], torch.tensor([4, 3, 2, 1], dtype=torch.uint8))
    is_mirror = [torch.equal(out, m) for out, m in zip(flipped, mirrored, strict=True)]
    is_same = [torch.equal(out, b) for out, b in zip(flipped, batch, strict=True)]
    assert all(a or b for a, b in zip(is_mirror, is_same, strict=True))
    assert 10 < sum(is_mirror) < 54

    shifted = crop_and_flip(batch, pad=1, flip=False, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape and shifted.dtype == torch.uint8
    candidates = {(dy, dx): _shift(image, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    used = set()
    for out in shifted.numpy():
        match = [key for key, candidate in candidates.items() if np.array_equal(out[0], candidate)]
        assert len(match) == 1
        used.add(match[0])
        dy, dx = match[0]
        assert np.array_equal(out[1], _shift(image + 100, dy, dx))  # both channels moved alike
    assert len(used) >= 6


def test_crop_and_flip_together_is_a_shift_then_a_mirror() -> None:
    image = np.arange(1, 21, dtype=np.uint8).reshape(4, 5)
    batch = torch.from_numpy(np.stack([image, image + 100])[None]).repeat(200, 1, 1, 1)
    out = crop_and_flip(batch, pad=2, flip=True, generator=torch.Generator().manual_seed(1))
    seen = set()
    for sample in out.numpy():
        found = [(dy, dx, mirror) for dy in range(-2, 3) for dx in range(-2, 3) for mirror in (False, True)
                 if np.array_equal(sample[0], _shift(image, dy, dx)[:, ::-1] if mirror else _shift(image, dy, dx))]  # fmt: skip
        assert found, sample[0]
        dy, dx, mirror = found[0]
        other = _shift(image + 100, dy, dx)
        assert np.array_equal(sample[1], other[:, ::-1] if mirror else other)  # both channels alike
        seen.add(found[0])
    assert len(seen) >= 30  # of the 50 shift and mirror combinations


def test_resume_mid_epoch_yields_the_remaining_batches() -> None:
    def fresh() -> InMemoryLoader:
        loader = _indexed_loader(batch_size=10, pad=2, flip=True, seed=7)
        loader.sampler.set_epoch(3)
        return loader

    full = list(fresh())
    interrupted = fresh()
    iterator = iter(interrupted)
    for _ in range(4):
        next(iterator)
    state = interrupted.state_dict()
    assert state == {"epoch": 3, "batches": 4}

    resumed = fresh()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 4
    for (x, y), (x_full, y_full) in zip(rest, full[4:], strict=True):
        assert torch.equal(x, x_full) and torch.equal(y, y_full)
    # the saved position applies once: the same epoch again, and the next one, are whole
    assert len(_epoch(resumed, 3)) == len(_epoch(resumed, 4)) == len(full)


def test_resume_state_from_another_epoch_is_ignored() -> None:
    loader = _indexed_loader(batch_size=10)
    loader.load_state_dict({"epoch": 2, "batches": 5})
    assert len(_epoch(loader, 3)) == len(loader)


# --- FolderDataModule -----------------------------------------------------------------------------------


def _image_folder(
    root: Path, split: str, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 6
) -> None:
    rng = np.random.default_rng(len(split))
    for label, name in enumerate(classes):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (40 + 4 * i, 36)  # (width, height), deliberately not square
            pixels = rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8)
            pixels[..., label % 3] = 255
            Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")


def _folder_dm(root: Path, **kwargs: Any) -> FolderDataModule:
    return FolderDataModule(str(root), image_size=32, batch_size=4, num_workers=0, **kwargs)


def test_folder_batches_and_held_out_split(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train")
    dm = _folder_dm(tmp_path, val_size=0.25)
    assert dm.classes == ["cat", "dog"] and dm.num_classes == 2
    dm.setup()
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert len(train) == 9 and len(val) == 3
    assert not set(train.indices) & set(val.indices)
    assert sorted(train.indices + val.indices) == list(range(12))
    assert dm.datasets["test"] is val
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1}
    val_batches = list(dm.val_dataloader())
    assert [tuple(x.shape) for x, _ in val_batches] == [(3, 3, 32, 32)]
    again = _folder_dm(tmp_path, val_size=3)
    again.setup()
    assert again.datasets["val"].indices == val.indices  # seeded
    other = _folder_dm(tmp_path, val_size=3, seed=1)
    other.setup()
    assert sorted(other.datasets["val"].indices) != sorted(val.indices)


def test_folder_with_val_and_test(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train")
    _image_folder(tmp_path, "val", per_class=2)
    _image_folder(tmp_path, "test", per_class=3)
    dm = _folder_dm(tmp_path, eval_batch_size=8, grayscale=True)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [12, 4, 6]
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (6, 1, 32, 32)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]


def test_folder_missing_root(tmp_path: Path) -> None:
    dm = _folder_dm(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere"):
        dm.setup()
    with pytest.raises(DataError, match="nowhere"):
        _ = dm.classes


def test_folder_val_with_other_classes(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train")
    _image_folder(tmp_path, "val", classes=("bird", "cat", "dog"), per_class=1)
    with pytest.raises(DataError, match="bird"):
        _folder_dm(tmp_path).setup()


def test_folder_val_size_leaves_nothing(tmp_path: Path) -> None:
    _image_folder(tmp_path, "train", per_class=2)
    with pytest.raises(DataError, match="val_size"):
        _folder_dm(tmp_path, val_size=4).setup()


# --- the real Fashion-MNIST ---------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_fashion_mnist() -> None:
    system = require_fashion_mnist()
    dm = FashionMNISTDataModule(root=None, batch_size=512)
    assert dm.find_folder() == system
    dm.prepare_data()
    dm.setup()
    train, val, test = (dm.splits[s] for s in ("train", "val", "test"))
    assert len(train[0]) == 55000 and len(val[0]) == 5000 and len(test[0]) == 10000
    assert train[0].shape[1:] == (1, 28, 28) and train[0].dtype == torch.uint8
    assert dm.num_classes == 10 and dm.classes[0] == "T-shirt/top" and dm.classes[9] == "Ankle boot"
    assert sorted(set(test[1].tolist())) == list(range(10))
    assert torch.bincount(test[1]).tolist() == [1000] * 10
    assert dm.mean.item() == pytest.approx(0.286, abs=0.003)
    assert dm.std.item() == pytest.approx(0.353, abs=0.003)


def test_gzipped_cifar_pickles_do_not_count_as_the_dataset(tmp_path: Path) -> None:
    # CIFAR ships as plain pickles; a folder of .gz files must be "not found", not a crash on open()
    folder = make_cifar10(tmp_path, per_batch=4) / "cifar-10-batches-py"
    for path in list(folder.iterdir()):
        path.rename(path.with_name(path.name + ".gz"))
    with pytest.raises(DataError, match="cifar10 not found"):
        CIFAR10DataModule(str(tmp_path)).setup()
