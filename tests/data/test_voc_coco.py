"""VOC and COCO-format DataModules on fabricated files in the real formats: JPEGs, VOC XML, palette PNGs, json."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_voc_segmentation
from PIL import Image
from torchvision import tv_tensors

from zoo.data.coco import COCODetectionDataModule
from zoo.data.detection import detection_transform
from zoo.data.readers.voc import VOC_CLASSES, read_class_png
from zoo.data.targets import IGNORE_INDEX
from zoo.data.voc import VOCDetectionDataModule, VOCSegmentationDataModule
from zoo.errors import DataError

W, H = 40, 30


def jpeg(path: Path, width: int = W, height: int = H, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def voc_xml(path: Path, objects: list[tuple[str, int, tuple[int, int, int, int]]]) -> None:
    body = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, difficult, b in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><folder>VOC2012</folder><filename>{path.stem}.jpg</filename>"
        f"<size><width>{W}</width><height>{H}</height><depth>3</depth></size><segmented>0</segmented>{body}"
        "</annotation>"
    )


def palette_png(path: Path, indices: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    png = Image.fromarray(indices.astype(np.uint8), mode="P")
    palette = [0] * 768
    palette[15 * 3 : 15 * 3 + 3] = [192, 128, 128]  # VOC's person colour
    palette[255 * 3 : 255 * 3 + 3] = [224, 224, 192]  # VOC's border colour
    png.putpalette(palette)
    png.save(path)


def semantic(width: int = W, height: int = H) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[5:20, 10:30] = 255
    mask[6:19, 11:29] = 15
    return mask


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """``VOCdevkit/VOC2012`` with two annotated images and their segmentation masks."""
    base = tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    for index, image_id in enumerate(("2008_000001", "2008_000002")):
        jpeg(base / "JPEGImages" / f"{image_id}.jpg", seed=index)
        palette_png(base / "SegmentationClass" / f"{image_id}.png", semantic())
    voc_xml(
        base / "Annotations" / "2008_000001.xml",
        [("dog", 0, (5, 6, 20, 25)), ("person", 1, (1, 1, 40, 30)), ("chair", 0, (30, 10, 25, 20))],
    )
    voc_xml(base / "Annotations" / "2008_000002.xml", [("tvmonitor", 0, (10, 10, 45, 20))])
    for lists in ("Main", "Segmentation"):
        (base / "ImageSets" / lists).mkdir(parents=True)
        (base / "ImageSets" / lists / "train.txt").write_text("2008_000001\n2008_000002\n")
        (base / "ImageSets" / lists / "val.txt").write_text("2008_000002\n")
    return tmp_path / "voc"


def test_voc_detection_parses_labels_boxes_and_difficult(
    voc_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        data = VOCDetectionDataModule(str(voc_root), size=None, num_workers=0)
        data.setup()
    first = data.datasets["train"].records[0]
    assert first.labels.tolist() == [VOC_CLASSES.index("dog") + 1]  # person is difficult, chair degenerate
    assert first.boxes.tolist() == [[4.0, 5.0, 20.0, 25.0]]  # 1-based inclusive → 0-based XYXY
    second = data.datasets["train"].records[1]
    assert second.labels.tolist() == [20] and second.boxes.tolist() == [[9.0, 9.0, 40.0, 20.0]]  # clipped
    assert data.dropped["train"] == 1 and "dropped 1 degenerate" in caplog.text
    assert data.num_classes == 21 and data.classes[0] == "aeroplane"

    kept = VOCDetectionDataModule(str(voc_root), size=None, keep_difficult=True, num_workers=0)
    kept.setup()
    assert kept.datasets["train"].records[0].labels.tolist() == [12, 15]

    images, targets = next(iter(data.train_dataloader()))
    assert len(images) == len(targets) == 2
    assert images[0].dtype == torch.float32 and tuple(images[0].shape) == (3, H, W)
    assert (
        isinstance(targets[0]["boxes"], tv_tensors.BoundingBoxes)
        and targets[0]["labels"].dtype == torch.int64
    )


def test_flip_moves_boxes_with_the_image() -> None:
    pixels = torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    boxes = tv_tensors.BoundingBoxes([[4.0, 5.0, 20.0, 25.0]], format="XYXY", canvas_size=(H, W))
    transform = detection_transform(train=True, size=None, max_size=None, scale_range=(1.0, 1.0), flip=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = transform(tv_tensors.Image(pixels), {"boxes": boxes, "labels": torch.tensor([3])})
        flipped = torch.allclose(image, pixels.flip(-1).float() / 255)
        assert flipped or torch.allclose(image, pixels.float() / 255)
        expected = [[W - 20.0, 5.0, W - 4.0, 25.0]] if flipped else [[4.0, 5.0, 20.0, 25.0]]
        assert target["boxes"].tolist() == expected
        seen.add(flipped)
    assert seen == {True, False}


def test_resize_scales_boxes() -> None:
    boxes = tv_tensors.BoundingBoxes([[4.0, 5.0, 20.0, 25.0]], format="XYXY", canvas_size=(H, W))
    transform = detection_transform(train=False, size=60, max_size=None, scale_range=(1.0, 1.0), flip=True)
    image, target = transform(tv_tensors.Image(torch.zeros(3, H, W, dtype=torch.uint8)), {"boxes": boxes})
    assert tuple(image.shape) == (3, 60, 80)
    assert target["boxes"].tolist() == [[8.0, 10.0, 40.0, 50.0]]


def test_voc_segmentation_masks_keep_indices_and_ignore(voc_root: Path) -> None:
    png = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2008_000001.png"
    assert np.array_equal(read_class_png(png), semantic())  # indices, not palette colours
    data = VOCSegmentationDataModule(str(voc_root), crop_size=30, num_workers=0, batch_size=2)
    data.setup()
    images, mask = next(iter(data.val_dataloader()))  # the batch is (images, masks), as the shapes give it
    assert tuple(images.shape) == (1, 3, 30, 30) and images.dtype == torch.float32
    assert type(mask) is torch.Tensor and mask.dtype == torch.int64 and tuple(mask.shape) == (1, 30, 30)
    assert torch.equal(mask[0], torch.from_numpy(semantic()[:, 5:35]).long())  # centre crop of 40 → 30
    images, mask = next(iter(data.train_dataloader()))
    assert tuple(images.shape) == (2, 3, 30, 30) and set(mask.unique().tolist()) <= {0, 15, 255}
    # classes names the objects only, as every DataModule: label i is classes[i - 1], 0 the background
    assert data.classes == list(VOC_CLASSES) and data.classes[15 - 1] == "person"
    assert data.num_classes == 21 and IGNORE_INDEX == 255


def test_voc_segmentation_whole_images_are_padded_with_ignore(voc_root: Path) -> None:
    base = voc_root / "VOCdevkit" / "VOC2012"
    jpeg(base / "JPEGImages" / "2008_000003.jpg", width=50, height=20, seed=3)
    palette_png(base / "SegmentationClass" / "2008_000003.png", semantic(width=50, height=20))
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2008_000002\n2008_000003\n")
    data = VOCSegmentationDataModule(str(voc_root), eval_size=20, num_workers=0, batch_size=2)
    images, masks = next(iter(data.val_dataloader()))
    # 40x30 becomes 26x20 (shorter side 20), 50x20 stays: the batch is as wide as the widest, 50
    assert tuple(images.shape) == (2, 3, 20, 50) and tuple(masks.shape) == (2, 20, 50)
    assert (images[0, :, :, 26:] == 0).all() and (masks[0, :, 26:] == IGNORE_INDEX).all()
    assert set(masks[0, :, :26].unique().tolist()) <= {0, 15, 255}
    assert (masks[0, :, :26] != IGNORE_INDEX).any()
    assert torch.equal(masks[1], torch.from_numpy(semantic(width=50, height=20)).long())
    with pytest.raises(DataError, match="crop_size and eval_size must be at least 1"):
        VOCSegmentationDataModule(str(voc_root), eval_size=0)


def test_voc_segmentation_mask_of_the_wrong_size(voc_root: Path) -> None:
    png = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2008_000002.png"
    palette_png(png, semantic(width=41))
    with pytest.raises(DataError) as error:
        VOCSegmentationDataModule(str(voc_root), num_workers=0).setup()
    assert str(error.value) == f"{png}: mask is 41x30 but its image 2008_000002.jpg is 40x30"


def test_voc_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        VOCDetectionDataModule(str(tmp_path)).prepare_data()
    assert str(error.value) == (
        f"VOC2012 not found (looked for JPEGImages, Annotations and ImageSets/Main/train.txt, "
        f"ImageSets/Main/val.txt in {tmp_path}, including sub-folders 'VOCdevkit/VOC2012' and 'VOC2012', "
        "the only place searched when a root is given); "
        "pass --data.download true to fetch it, or unpack VOCtrainval_11-May-2012.tar from "
        "http://host.robots.ox.ac.uk/pascal/VOC/ there"
    )


def test_voc_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def offline(root: str, **kwargs: Any) -> None:
        calls.append({"root": root, **kwargs})
        raise RuntimeError("Error downloading VOCtrainval_11-May-2012.tar:\nno network")

    monkeypatch.setattr("torchvision.datasets.VOCDetection", offline)
    with pytest.raises(DataError) as error:
        VOCDetectionDataModule(str(tmp_path), download=True).prepare_data()
    assert calls == [{"root": str(tmp_path), "year": "2012", "image_set": "train", "download": True}]
    assert str(error.value) == (
        f"could not download VOC2012 into {tmp_path}: Error downloading VOCtrainval_11-May-2012.tar: no network"
    )


def test_voc_bad_xml_is_one_line(voc_root: Path) -> None:
    xml = voc_root / "VOCdevkit" / "VOC2012" / "Annotations" / "2008_000002.xml"
    xml.write_text("<annotation><size>")
    with pytest.raises(DataError, match=r"2008_000002\.xml: not valid XML") as error:
        VOCDetectionDataModule(str(voc_root), num_workers=0).setup()
    assert "\n" not in str(error.value)


# ---- COCO ----------------------------------------------------------------------------------------------------


def coco(tmp_path: Path, **changes: Any) -> tuple[Path, Path]:
    images = tmp_path / "images"
    jpeg(images / "a.jpg")
    jpeg(images / "b.jpg", seed=1)
    data: dict[str, Any] = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [10, 10, 10, 10], "iscrowd": 0,
             "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]], "area": 100},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [30, 20, 20, 20], "iscrowd": 0,
             "segmentation": [[30, 20, 39, 20, 39, 29]], "area": 50},
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30], "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": [0, W * H]}, "area": 1200},
            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [5, 5, 0.5, 10], "iscrowd": 0,
             "segmentation": [], "area": 0},
            {"id": 14, "image_id": 2, "category_id": 18, "bbox": [50, 5, 10, 10], "iscrowd": 0,
             "segmentation": [], "area": 100},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
    }  # fmt: skip
    data.update(changes)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_coco_labels_boxes_crowd_and_filtering(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, images = coco(tmp_path)
    with caplog.at_level(logging.WARNING):
        data = COCODetectionDataModule(str(path), str(images), size=None, num_workers=0)
        data.setup()
    assert data.classes == ["person", "dog"] and data.num_classes == 3  # sorted by id: person 1, dog 18
    first, second = data.datasets["train"].records
    assert first.labels.tolist() == [2, 1]  # the crowd annotation is dropped
    assert first.boxes.tolist() == [
        [10.0, 10.0, 20.0, 20.0],
        [30.0, 20.0, 40.0, 30.0],
    ]  # xywh → xyxy, clipped
    assert second.labels.tolist() == [] and tuple(second.boxes.shape) == (0, 4)
    assert data.dropped["train"] == 2 and "dropped 2 boxes" in caplog.text and "ids 13, 14" in caplog.text
    crowd = COCODetectionDataModule(str(path), str(images), keep_crowd=True, num_workers=0)
    crowd.setup()
    assert crowd.datasets["train"].records[0].labels.tolist() == [2, 1, 1]


def test_coco_polygon_masks(tmp_path: Path) -> None:
    path, images = coco(tmp_path)
    data = COCODetectionDataModule(str(path), str(images), size=None, masks=True, flip=False, num_workers=0)
    data.setup()
    _, target = data.datasets["train"][0]
    masks = target["masks"]
    assert isinstance(masks, tv_tensors.Mask) and tuple(masks.shape) == (2, H, W)
    assert int(masks[0].sum()) == 11 * 11 and masks[0, 15, 15] == 1 and masks[0, 5, 5] == 0
    assert masks[1, 21, 38] == 1 and masks[1, 28, 31] == 0  # the triangle's upper-right half
    _, empty = data.datasets["train"][1]
    assert tuple(empty["masks"].shape) == (0, H, W)


def test_coco_rle_without_pycocotools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pycocotools is a dependency (torchmetrics' mAP uses it); a None entry makes its import fail as if absent
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    path, images = coco(tmp_path)
    data = COCODetectionDataModule(str(path), str(images), keep_crowd=True, masks=True, num_workers=0)
    data.setup()
    with pytest.raises(DataError) as error:
        data.datasets["train"][0]
    assert str(error.value) == (
        f"{images / 'a.jpg'}: RLE segmentation needs pycocotools (pip install pycocotools), or pass masks=false"
    )


def test_coco_missing_image(tmp_path: Path) -> None:
    path, images = coco(tmp_path)
    (images / "b.jpg").unlink()
    with pytest.raises(DataError) as error:
        COCODetectionDataModule(str(path), str(images)).setup()
    assert str(error.value) == f"{images / 'b.jpg'}: image listed in {path} (id 2) does not exist"


def test_coco_malformed_json(tmp_path: Path) -> None:
    path, images = coco(tmp_path)
    path.write_text('{"images": [}')
    with pytest.raises(DataError) as error:
        COCODetectionDataModule(str(path), str(images)).setup()
    assert str(error.value) == f"{path}: not valid JSON (Expecting value at line 1 column 13)"
    path.write_text('{"images": []}')
    with pytest.raises(DataError) as error:
        COCODetectionDataModule(str(path), str(images)).setup()
    assert str(error.value) == f"{path}: missing the list 'annotations' of a COCO annotation file"


def test_coco_loader_collates_lists_and_flips(tmp_path: Path) -> None:
    path, images = coco(tmp_path)
    data = COCODetectionDataModule(str(path), str(images), val_json=str(path), size=60, num_workers=0)
    data.setup()
    batch_images, targets = next(iter(data.val_dataloader()))
    assert [tuple(i.shape) for i in batch_images] == [(3, 60, 80), (3, 60, 80)]
    upright = [[20.0, 20.0, 40.0, 40.0], [60.0, 40.0, 80.0, 60.0]]
    assert targets[0]["boxes"].tolist() == upright  # evaluation: resized only, never flipped
    assert data.test_dataloader().dataset is data.datasets["val"]
    # training flips an image at random, and its boxes with it: x1, x2 become 80 - x2, 80 - x1
    mirrored = [[80 - x2, y1, 80 - x1, y2] for x1, y1, x2, y2 in upright]
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        train_images, train_targets = next(iter(data.dataloader("train")))  # in order: a.jpg first
        flipped = torch.equal(train_images[0], batch_images[0].flip(-1))
        assert flipped or torch.equal(train_images[0], batch_images[0])
        assert train_targets[0]["boxes"].tolist() == (mirrored if flipped else upright)
        seen.add(flipped)
    assert seen == {True, False}


def test_voc_found_in_the_system_dataset_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_voc_segmentation(tmp_path / "system" / "voc")
    monkeypatch.setattr("zoo.data.base.SYSTEM_DATA_DIRS", (tmp_path / "system",))
    data = VOCSegmentationDataModule(num_workers=0)
    data.setup()
    assert len(data.datasets["train"]) == 2
