"""The weights record users get: ``get_weights``, ``net.pretrained_cfg``, categories, metrics, ``transforms()``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import require_fashion_mnist
from PIL import Image, ImageDraw

from zoo.data import FashionMNISTDataModule
from zoo.data.readers.idx import read_idx
from zoo.models import create_model, get_weights, list_weights
from zoo.models.detection_backbones import MOBILENET_V3_LARGE_IMAGENET
from zoo.models.preprocess import FASHIONMNIST_PREPROCESS, Preprocess
from zoo.models.weights import FASHIONMNIST_CATEGORIES, UnknownWeightsError, WeightsError

FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _trousers(path: Path, size: tuple[int, int] = (120, 90), mode: str = "RGB") -> Path:
    """A Fashion-MNIST-like photo: light trousers (two legs under a waistband) on a black background."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([0.33 * w, 0.05 * h, 0.67 * w, 0.2 * h], fill=(200, 190, 180))  # waistband
    draw.rectangle([0.33 * w, 0.05 * h, 0.47 * w, 0.95 * h], fill=(200, 190, 180))  # left leg
    draw.rectangle([0.53 * w, 0.05 * h, 0.67 * w, 0.95 * h], fill=(200, 190, 180))  # right leg
    image.convert(mode).save(path)
    return path


# --- the record ------------------------------------------------------------------------------------------------


def test_get_weights_and_pretrained_cfg_give_the_same_record() -> None:
    record = get_weights("lenet5.fashionmnist")
    assert (record.model, record.tag, record.num_classes, record.in_channels) == (
        "lenet5",
        "fashionmnist",
        10,
        1,
    )
    assert record.categories == FASHION
    assert record.metrics == {"fashionmnist_test_acc": 0.9117}
    assert record.adapted == ()
    net = create_model("lenet5", weights="fashionmnist")
    assert net.pretrained_cfg == record
    assert create_model("lenet5").pretrained_cfg is None
    assert create_model("lenet5", weights=None, image_size=28).pretrained_cfg is None


def test_get_weights_refuses_what_names_no_weights() -> None:
    with pytest.raises(UnknownWeightsError, match=r"'lenet5' names no weights: give MODEL.TAG"):
        get_weights("lenet5")
    with pytest.raises(UnknownWeightsError, match=r"model 'lenet5' has no pretrained weights named 'x'"):
        get_weights("lenet5.x")


def test_fashion_mnist_categories_are_the_datasets_classes() -> None:
    assert FASHIONMNIST_CATEGORIES == FASHION == FashionMNISTDataModule.classes
    for name in ("convnet.fashionmnist", "mlp.fashionmnist", "lenet5.fashionmnist"):
        assert get_weights(name).categories == FASHION
    assert get_weights("convnet.fashionmnist_0to4").categories == FASHION[:5]


@pytest.mark.parametrize("name", list_weights("*.imagenet*"))
def test_imagenet_weights_carry_torchvisions_categories(name: str) -> None:
    model, tag = name.split(".")
    enum = torchvision.models.get_model_weights(model)
    theirs = (enum.IMAGENET1K_V1 if tag == "imagenet" else enum.IMAGENET1K_V2).meta["categories"]
    assert get_weights(name).categories == tuple(theirs)


def test_coco_and_voc_weights_carry_torchvisions_categories() -> None:
    detection = torchvision.models.detection
    coco = tuple(detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    for name in list_weights("fasterrcnn_*.coco"):
        assert get_weights(name).categories == coco, name
    voc = torchvision.models.segmentation.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"]
    assert get_weights("fcn_resnet50.coco_voc").categories == tuple(voc)
    assert MOBILENET_V3_LARGE_IMAGENET.categories == tuple(
        torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1.meta["categories"]
    )


def test_every_registered_record_is_consistent() -> None:
    for name in list_weights():
        record = get_weights(name)
        assert record.categories is None or len(record.categories) == record.num_classes, name
        assert record.preprocess is None or record.preprocess.channels == record.in_channels, name


# --- transforms() ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA", "CMYK"])
def test_transforms_turn_any_photo_into_what_the_network_takes(mode: str, tmp_path: Path) -> None:
    path = _trousers(tmp_path / "photo.png" if mode != "CMYK" else tmp_path / "photo.jpg", mode=mode)
    x = get_weights("lenet5.fashionmnist").transforms()(Image.open(path))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    # the same photo in grey, resized and normalised by hand with the weights' statistics
    grey = Image.open(_trousers(tmp_path / "grey.png", mode="L")).resize((37, 28), Image.Resampling.BILINEAR)
    expected = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255)[None, :, 4:32]
    expected = (expected - 0.2859) / 0.3529
    assert x.min() < -0.5 and x.max() > 1.0  # normalised: the black background is below zero
    torch.testing.assert_close(x, expected, atol=0.35, rtol=0)  # PIL and torchvision resize differ slightly
    assert (x - expected).abs().mean() < 0.05


def test_transforms_take_tensors_and_arrays(tmp_path: Path) -> None:
    photo = Image.open(_trousers(tmp_path / "photo.png"))
    transform = get_weights("lenet5.fashionmnist").transforms()
    from_pil = transform(photo)
    from_tensor = transform(torch.from_numpy(np.array(photo)).permute(2, 0, 1))  # uint8 (C, H, W)
    from_array = transform(np.array(photo))  # uint8 (H, W, C)
    from_rgba = transform(
        torch.cat(
            [
                torch.from_numpy(np.array(photo)).permute(2, 0, 1),
                torch.full((1, 90, 120), 255, dtype=torch.uint8),
            ]
        )
    )
    for other in (from_tensor, from_array, from_rgba):
        torch.testing.assert_close(other, from_pil, atol=0.05, rtol=0)  # PIL's luma rounds differently
    grey = transform(torch.from_numpy(np.asarray(photo.convert("L")))[None])
    torch.testing.assert_close(grey, from_pil, atol=0.05, rtol=0)


def test_preprocess_for_other_channels() -> None:
    three = FASHIONMNIST_PREPROCESS.with_channels(3)
    assert three.mean == (0.2859,) * 3 and three.std == (0.3529,) * 3
    imagenet = Preprocess(resize=256, crop=224, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2))
    one = imagenet.with_channels(1)
    assert one.mean == pytest.approx((0.5,)) and one.std == pytest.approx((0.2,))
    assert imagenet.with_channels(4).mean == (0.4, 0.5, 0.6, 0.4)
    x = imagenet.transforms()(Image.new("L", (300, 260), 128))  # a grey photo for an RGB network
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x[:, 0, 0], (128 / 255 - torch.tensor([0.4, 0.5, 0.6])) / 0.2)
    with pytest.raises(ValueError, match="one value per channel"):
        Preprocess(resize=1, crop=1, mean=(0.5,), std=(0.5, 0.5))


def test_a_record_without_preprocessing_says_so() -> None:
    from dataclasses import replace

    record = replace(get_weights("lenet5.fashionmnist"), preprocess=None)
    with pytest.raises(
        WeightsError, match=r"weights 'lenet5.fashionmnist' do not say how images were prepared"
    ):
        record.transforms()


# --- classifying a photo in three lines -------------------------------------------------------------------------


def test_classify_a_photo_in_three_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _trousers(tmp_path / "photo.jpg")

    net = create_model("lenet5", weights="fashionmnist").eval()
    w = net.pretrained_cfg
    print(w.categories[net(w.transforms()(Image.open("photo.jpg")).unsqueeze(0)).argmax()])

    assert capsys.readouterr().out == "Trouser\n"


@pytest.mark.real_data
def test_classify_real_test_images_saved_as_rgb_photos(tmp_path: Path) -> None:
    """200 Fashion-MNIST test images as 100x100 RGB PNGs, classified through ``transforms()`` as photos are."""
    root = require_fashion_mnist()
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")[:200]
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz")[:200]
    net = create_model("lenet5", weights="fashionmnist").eval()
    w = net.pretrained_cfg
    transform = w.transforms()
    batch = []
    for index, image in enumerate(images):
        path = tmp_path / f"{index}.png"
        Image.fromarray(image.numpy()).convert("RGB").resize((100, 100), Image.Resampling.BICUBIC).save(path)
        with Image.open(path) as photo:
            assert photo.mode == "RGB" and photo.size == (100, 100)
            batch.append(transform(photo))
    with torch.no_grad():
        predicted = net(torch.stack(batch)).argmax(1)
    accuracy = float((predicted == labels.long()).float().mean())
    assert accuracy >= 0.8, accuracy
    assert [w.categories[int(i)] for i in predicted[:3]] == [w.categories[int(i)] for i in labels[:3]]
