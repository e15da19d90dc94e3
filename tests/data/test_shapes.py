"""The synthetic shapes set: determinism, geometry of the targets, occlusion, flips, batches, bad arguments."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from zoo.data.shapes import MAX_SIZE, MIN_SIZE, ShapesDataModule
from zoo.data.targets import check_boxes
from zoo.errors import DataError

SMALL: dict[str, Any] = {"num_train": 48, "num_val": 8, "num_test": 8, "batch_size": 8}


def _module(mode: str = "detection", **kwargs: Any) -> ShapesDataModule:
    dm = ShapesDataModule(mode, **{**SMALL, **kwargs})  # type: ignore[arg-type]
    dm.setup()
    return dm


def _targets(dm: ShapesDataModule, split: str = "train") -> list[dict[str, Any]]:
    dataset = dm.datasets[split]
    return [dataset.target(i) for i in range(len(dataset))]


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = _module(seed=3), _module(seed=3), _module(seed=4)
    for split in ("train", "val", "test"):
        for name in ("images", "instances", "labels", "boxes"):
            assert torch.equal(getattr(a.datasets[split], name), getattr(b.datasets[split], name))
        assert not torch.equal(a.datasets[split].images, c.datasets[split].images)
    assert not torch.equal(a.datasets["train"].images[:8], a.datasets["val"].images)  # splits differ too
    assert a.datasets["train"].images.dtype == torch.uint8


def test_object_counts_within_bounds() -> None:
    counts = torch.tensor([len(t["labels"]) for t in _targets(_module(min_objects=2, max_objects=3))])
    assert counts.min() >= 1 and counts.max() <= 3  # hidden objects are dropped, never all of them
    assert (counts >= 2).float().mean() > 0.8
    assert all(len(t["labels"]) == 1 for t in _targets(_module("localization")))


def test_boxes_inside_tight_and_sized() -> None:
    dm = _module(image_size=96)
    for target in _targets(dm):
        boxes, masks, labels = target["boxes"], target["masks"], target["labels"]
        assert (
            isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
        )
        assert labels.dtype == torch.int64 and labels.min() >= 1 and labels.max() < dm.num_classes
        assert masks.dtype == torch.uint8 and masks.flatten(1).any(1).all()  # no empty mask survives
        assert check_boxes(boxes, height=96, width=96, where="shapes").all()
        assert boxes.min() >= 0 and boxes.max() <= 96
        # tight: pixel edges around the mask (masks_to_boxes gives the last pixel's index, not its far edge)
        assert torch.equal(
            boxes.as_subclass(torch.Tensor), masks_to_boxes(masks) + torch.tensor([0, 0, 1, 1])
        )
        sides = boxes[:, 2:] - boxes[:, :2]
        assert sides.max() <= MAX_SIZE
        assert sides[-1].min() >= MIN_SIZE  # the last object is drawn on top: never occluded
    single = torch.cat([t["boxes"] for t in _targets(_module("localization"))])
    sides = single[:, 2:] - single[:, :2]
    assert sides.min() >= MIN_SIZE and sides.max() <= MAX_SIZE


def test_semantic_mask_matches_instances() -> None:
    for target in _targets(_module()):
        expected = torch.zeros(target["semantic"].shape, dtype=torch.int64)
        for mask, label in zip(target["masks"].bool(), target["labels"], strict=True):
            expected[mask] = label
        assert target["semantic"].dtype == torch.int64
        assert torch.equal(target["semantic"].as_subclass(torch.Tensor), expected)


def test_occlusion_keeps_masks_disjoint_and_drops_hidden_objects() -> None:
    dm = _module(image_size=MAX_SIZE, min_objects=10, max_objects=10)  # crowded: objects cover each other
    targets = _targets(dm)
    for target in targets:
        assert target["masks"].sum(0).max() <= 1  # a pixel belongs to one object at most
        assert torch.equal(target["masks"].any(0), target["semantic"] > 0)
    assert min(len(t["labels"]) for t in targets) < 10  # some objects were hidden entirely and dropped
    dataset = dm.datasets["train"]
    occluded = (dataset.boxes[..., 2:] - dataset.boxes[..., :2]).amin(-1)[dataset.labels > 0]
    assert occluded.min() < MIN_SIZE  # visible parts, not drawn sizes, set the boxes


def test_flip_moves_boxes_and_masks_with_the_image() -> None:
    dm = _module(image_size=64, flip=True)
    dataset = dm.datasets["train"]
    raw_image, raw = dataset.images[0], dataset.target(0)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = dataset[0]
        assert image.dtype == torch.float32 and image.max() <= 1
        flipped = not torch.equal((image * 255).round().byte(), raw_image)
        seen.add(flipped)
        if not flipped:
            continue
        assert torch.equal((image * 255).round().byte(), raw_image.flip(-1))
        x1, y1, x2, y2 = raw["boxes"].unbind(1)
        mirrored = torch.stack([64 - x2, y1, 64 - x1, y2], 1)
        assert torch.equal(target["boxes"].as_subclass(torch.Tensor), mirrored.as_subclass(torch.Tensor))
        assert torch.equal(target["masks"], raw["masks"].flip(-1))
        assert torch.equal(target["semantic"], raw["semantic"].flip(-1))
        assert torch.equal(target["boxes"], masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1]))
    assert seen == {True, False}
    image, _ = dm.datasets["val"][0]  # evaluation is never flipped
    assert torch.equal((image * 255).round().byte(), dm.datasets["val"].images[0])


def test_batches_of_each_mode() -> None:
    images, target = next(iter(_module("localization", image_size=64).train_dataloader()))
    assert images.shape == (8, 3, 64, 64) and images.dtype == torch.float32
    assert target["labels"].shape == (8,) and target["boxes"].shape == (8, 4)

    dm = _module("detection", image_size=64)
    images, targets = next(iter(dm.val_dataloader()))
    assert isinstance(images, list) and len(images) == len(targets) == 8
    assert images[0].shape == (3, 64, 64)
    assert set(targets[0]) == {"labels", "boxes", "masks", "semantic"}
    assert targets[0]["masks"].shape[1:] == (64, 64)

    dm = _module("segmentation", image_size=64)
    images, masks = next(iter(dm.test_dataloader()))
    assert images.shape == (8, 3, 64, 64)
    assert masks.shape == (8, 64, 64) and masks.dtype == torch.int64
    assert masks.min() >= 0 and masks.max() < dm.num_classes
    assert dm.classes == ("circle", "square", "triangle")
    assert (dm.num_classes, len(dm.classes), dm.image_shape) == (4, 3, (3, 64, 64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "classification"}, "mode must be one of localization, detection, segmentation"),
        ({"image_size": 32}, "image_size must be at least 48"),
        ({"num_train": 0}, "num_train must be at least 1"),
        ({"num_val": -1}, "num_val must be at least 1"),
        ({"num_test": 0}, "num_test must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"seed": -1}, "seed must be 0 or more"),
        ({"min_objects": 0}, "min_objects <= max_objects"),
        ({"min_objects": 3, "max_objects": 2}, "got min_objects=3, max_objects=2"),
        ({"max_objects": 11}, "max_objects <= 10"),
        ({"noise": -0.1}, "noise must be from 0 to 1"),
    ],
)
def test_bad_arguments_raise_data_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        ShapesDataModule(**kwargs)
