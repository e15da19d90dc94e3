"""Your own images: FolderDataModule's layouts, stratified split, channels and refusals; PhotosDataModule's files,
made into inputs exactly as the folder's evaluation images; the data record a checkpoint keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from conftest import make_idx_dataset
from PIL import Image
from torchvision.transforms import v2

from zoo.data import FashionMNISTDataModule, FolderDataModule
from zoo.data.folder import evaluation_transform
from zoo.data.photos import DATA_RECORD, PhotosDataModule, data_record, read_data_record
from zoo.data.readers.images import find_class_folders, image_channels, read_image
from zoo.errors import DataError

SAMPLES = ("astronaut", "chelsea", "coffee")


def make_photos(root: Path, *, per_class: int = 12, grey: bool = False, seed: int = 0) -> Path:
    """``root/<class>/*``: crops of scikit-image's sample photos, one photo a class, PNG and JPEG, several sizes."""
    rng = np.random.default_rng(seed)
    for name in SAMPLES:
        picture = getattr(skimage.data, name)()
        (root / name).mkdir(parents=True)
        height, width = picture.shape[:2]
        for index in range(per_class):
            side = int(rng.integers(120, min(height, width)))
            top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            crop = Image.fromarray(picture[top : top + side, left : left + side])
            crop = crop.resize((24 + 4 * (index % 5), 24 + 3 * (index % 4)))
            if grey:
                crop = crop.convert("L")
            crop.save(root / name / f"{index:02d}.{'png' if index % 2 else 'jpg'}")
    return root


def folder(root: Path, **kwargs: object) -> FolderDataModule:
    return FolderDataModule(str(root), **{"image_size": 28, "batch_size": 8, "num_workers": 0, **kwargs})  # type: ignore[arg-type]


def test_one_folder_layout_splits_every_class(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "photos")
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    data = folder(root)
    assert data.classes == list(SAMPLES) and data.num_classes == 3 and data.channels == 3
    data.setup("fit")
    train, val = data.datasets["train"], data.datasets["val"]
    assert len(val) == round(0.2 * 36) == 7 and len(train) == 29
    assert data.datasets["test"] is val  # no test/ folder: the final test is on the validation images
    labels = find_class_folders(root)[2]
    held = [labels[i] for i in val.indices]  # type: ignore[attr-defined]
    assert sorted(np.bincount(held).tolist()) == [2, 2, 3]  # stratified: in proportion, every class
    again = folder(root)
    again.setup("fit")
    assert again.datasets["val"].indices == val.indices  # type: ignore[attr-defined]  # seeded
    images, targets = next(iter(data.dataloader("val")))
    assert images.shape == (7, 3, 28, 28) and targets.tolist() == sorted(held)


def test_stratified_split_keeps_a_training_image_of_every_class(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "photos", per_class=2)
    data = folder(root, val_size=0.1)  # 0.1 of 6 rounds to 1, but every class gives one
    data.setup("fit")
    labels = find_class_folders(root)[2]
    assert sorted(labels[i] for i in data.datasets["val"].indices) == [0, 1, 2]  # type: ignore[attr-defined]
    assert sorted(labels[i] for i in data.datasets["train"].indices) == [0, 1, 2]  # type: ignore[attr-defined]


def test_a_class_with_too_few_images_is_named(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "photos")
    for extra in sorted((root / "coffee").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(
        DataError, match=r"class 'coffee' has 1 image in .*coffee.*at least 2 a class.*add images"
    ):
        folder(root).setup("fit")
    with pytest.raises(DataError, match=r"val_size 0\.95 holds out 34 of the 36 images.*lower val_size"):
        folder(make_photos(tmp_path / "more"), val_size=0.95).setup("fit")


def test_train_layout_with_its_own_val_and_test(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos" / "train", per_class=4)
    make_photos(tmp_path / "photos" / "val", per_class=2, seed=1)
    data = folder(tmp_path / "photos")
    data.setup("fit")
    assert [len(data.datasets[s]) for s in ("train", "val")] == [12, 6] and data.datasets[
        "test"
    ] is data.datasets["val"]
    make_photos(tmp_path / "other" / "train", per_class=3)
    (tmp_path / "other" / "val" / "dog").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "other" / "val" / "dog" / "a.png")
    with pytest.raises(DataError, match="has classes \\['dog'\\]"):
        folder(tmp_path / "other").setup("fit")


def test_channels_follow_the_images_unless_given(tmp_path: Path) -> None:
    grey = make_photos(tmp_path / "grey", per_class=3, grey=True)
    data = folder(grey)
    assert (
        data.channels == 1 and data.image_shape == (1, 28, 28) and data.mean.shape == data.std.shape == (1,)
    )
    assert data.mean.item() == pytest.approx(0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406)
    data.setup("fit")
    assert next(iter(data.dataloader("train", train=True)))[0].shape == (6, 1, 28, 28)  # 9 images, 3 held out
    as_rgb = folder(grey, channels=3)
    as_rgb.setup("fit")
    assert as_rgb.mean.shape == (3,) and next(iter(as_rgb.dataloader("val")))[0].shape[1] == 3
    colour = make_photos(tmp_path / "colour", per_class=3)
    Image.new("L", (30, 30), 128).save(colour / "coffee" / "grey.png")  # one grey image among colour ones
    assert folder(colour).channels == 3 and folder(colour, channels=1).image_shape == (1, 28, 28)
    with pytest.raises(DataError, match="channels must be 1"):
        folder(colour, channels=2)


def test_files_that_are_not_images_are_named_before_training(tmp_path: Path) -> None:
    root = make_photos(tmp_path / "photos", per_class=3)
    (root / "chelsea" / "notes.jpg").write_text("not a picture")
    with pytest.raises(DataError, match=r"notes\.jpg cannot be read as an image"):
        folder(root).setup("fit")
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no images"):
        _ = folder(root).classes
    with pytest.raises(DataError, match="holds no class folders"):
        _ = folder(tmp_path / "photos" / "chelsea").classes


def test_read_image_gives_rgb_or_grey_from_any_mode(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    modes = {"rgb.jpg": Image.fromarray(rgb), "rgba.png": Image.fromarray(rgb).convert("RGBA"),
             "pal.gif": Image.fromarray(rgb).convert("P"), "grey.png": Image.fromarray(rgb).convert("L")}  # fmt: skip
    for name, image in modes.items():
        image.save(tmp_path / name)
        assert read_image(tmp_path / name).shape == (3, 9, 7)
        assert read_image(tmp_path / name, channels=1).shape == (1, 9, 7)
    grey = read_image(tmp_path / "grey.png", channels=1)
    assert torch.equal(
        read_image(tmp_path / "grey.png"), grey.expand(3, -1, -1)
    )  # grey repeated, not weighted
    assert image_channels([tmp_path / "grey.png"]) == 1 and image_channels(sorted(tmp_path.iterdir())) == 3


def _checkpoint_for(data: FolderDataModule, path: Path) -> Path:
    torch.save({"state_dict": {}, DATA_RECORD: data_record(data)}, path)
    return path


def test_photos_are_made_into_inputs_exactly_as_the_folders_evaluation_images(tmp_path: Path) -> None:
    for grey in (False, True):
        root = make_photos(tmp_path / f"photos{grey}", per_class=4, grey=grey)
        data = folder(root, image_size=20)
        data.setup("fit")
        checkpoint = _checkpoint_for(data, tmp_path / f"{grey}.ckpt")
        photos = PhotosDataModule([str(root)], str(checkpoint), batch_size=64)
        assert photos.classes == list(SAMPLES) and photos.image_shape == data.image_shape
        assert torch.equal(photos.mean, data.mean) and torch.equal(photos.std, data.std)
        photos.setup("predict")
        images, numbers = next(iter(photos.dataloader("predict")))
        assert numbers.tolist() == list(range(12)) and photos.files == find_class_folders(root)[1]
        for index in data.datasets["val"].indices:  # type: ignore[attr-defined]
            expected = data.datasets["val"].dataset[index][0]  # type: ignore[attr-defined]
            assert torch.equal(images[index], expected)


def test_photos_take_any_mix_and_leave_out_what_does_not_decode(tmp_path: Path) -> None:
    data = folder(make_photos(tmp_path / "photos", per_class=2))
    checkpoint = _checkpoint_for(data, tmp_path / "best.ckpt")
    rgb = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(rgb).convert("RGBA").save(mixed / "a.png")
    Image.fromarray(rgb).convert("P").save(mixed / "b.gif")
    Image.fromarray(rgb[:, :, 0]).save(mixed / "c.png")
    (mixed / "d.jpg").write_bytes(b"\xff\xd8\xff truncated")
    Image.fromarray(rgb).resize((300, 90)).save(tmp_path / "wide.jpeg")
    photos = PhotosDataModule([str(tmp_path / "wide.jpeg"), str(mixed)], str(checkpoint), batch_size=3)
    assert [p.name for p in photos.files] == ["wide.jpeg", "a.png", "b.gif", "c.png", "d.jpg"]
    photos.setup("predict")
    batches = list(photos.dataloader("predict"))
    assert [n.tolist() for _, n in batches] == [[0, 1, 2], [3]]  # d.jpg (4) is left out
    assert all(images.shape[1:] == (3, 28, 28) for images, _ in batches)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    only_bad = PhotosDataModule([str(tmp_path / "bad")], str(checkpoint))
    only_bad.setup("predict")
    images, numbers = next(iter(only_bad.dataloader("predict")))
    assert images.shape == (0, 3, 28, 28) and numbers.shape == (0,)
    with pytest.raises(DataError, match=r"nowhere\.png does not exist"):
        PhotosDataModule([str(tmp_path / "nowhere.png")], str(checkpoint))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        PhotosDataModule([str(tmp_path / "empty")], str(checkpoint))


def test_a_checkpoint_without_a_data_record_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "old.ckpt")
    with pytest.raises(DataError, match="does not say which classes and image shape"):
        read_data_record(tmp_path / "old.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot be read safely"):
        PhotosDataModule([str(tmp_path)], str(tmp_path / "junk.ckpt"))


def test_evaluation_transform_resizes_the_shorter_side_then_crops() -> None:
    image = torch.randint(0, 256, (1, 64, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = evaluation_transform((1, 14, 14), None, None)(image)
    resized = v2.functional.resize(image, [16], antialias=True)  # ImageNet's 256 -> 224: 14 * 256 / 224 = 16
    assert resized.shape == (1, 16, 32)
    assert torch.allclose(out, v2.functional.center_crop(resized, [14, 14]).float() / 255, atol=1e-6)
    normalised = evaluation_transform((1, 14, 14), [0.5], [0.25])(image)
    assert torch.allclose(normalised, (out - 0.5) / 0.25)


def test_every_classification_data_leaves_a_record_photos_can_use(tmp_path: Path) -> None:
    data = FashionMNISTDataModule(str(make_idx_dataset(tmp_path / "idx", n_train=60, n_test=10)), val_size=10)
    data.setup("fit")
    record = data_record(data)
    assert (
        record is not None and record["classes"][0] == "T-shirt/top" and record["image_shape"] == [1, 28, 28]
    )
    assert len(record["mean"]) == len(record["std"]) == 1
    torch.save({DATA_RECORD: record}, tmp_path / "fashion.ckpt")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.png")
    photos = PhotosDataModule([str(tmp_path / "coffee.png")], str(tmp_path / "fashion.ckpt"))
    photos.setup("predict")
    images, numbers = next(iter(photos.dataloader("predict")))  # a colour photo, made grey and 28x28
    assert images.shape == (1, 1, 28, 28) and numbers.tolist() == [0] and photos.num_classes == 10
