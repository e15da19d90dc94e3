"""Boxes and masks drawn over images: the drawing functions on hand-made tensors, and PredictionOverlays with the
real LocalizationTask and with stub tasks (a declared kind, fixed step outputs), on tiny Shapes data.

Figure sizes follow from the layout: each image enlarged by a whole factor to at least 192 px (Shapes' 48 px by
4, to 192 px), drawn twice (truth, prediction), 4 tiles a row, tiles 2 px apart with 26 px of caption under each.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection

from zoo.callbacks import PredictionOverlays
from zoo.data import ShapesDataModule, TaskKind
from zoo.errors import ZooError
from zoo.figures.drawing import (
    IGNORE_COLOUR,
    class_colour,
    draw_boxes,
    draw_legend,
    draw_semantic,
    overlay_scale,
    paint_instances,
)
from zoo.figures.overlays import Overlay, label_names, overlay_figure
from zoo.tasks import LocalizationTask
from zoo.tasks.base import BaseTask, Stage

SIDE = 192  # a 48 px Shapes image enlarged 4 times
PAD, CAPTION = 2, 26


def figure_size(images: int, side: int = SIDE) -> tuple[int, int]:
    """Width and height of the figure of ``images`` pairs: 4 tiles a row."""
    tiles = 2 * images
    columns, rows = min(4, tiles), -(-tiles // 4)
    return columns * (side + PAD) + PAD, rows * (side + CAPTION + PAD) + PAD


def tile_origin(index: int, side: int = SIDE) -> tuple[int, int]:
    """Top-left pixel of tile ``index`` (truth of image ``i`` is ``2 i``, its prediction ``2 i + 1``)."""
    row, column = divmod(index, 4)
    return PAD + column * (side + PAD), PAD + row * (side + CAPTION + PAD)


def quiet_trainer(root: Path, callbacks: list[L.Callback], **kwargs: Any) -> L.Trainer:
    options: dict[str, Any] = {"logger": False, **kwargs}
    return L.Trainer(accelerator="cpu", callbacks=callbacks, default_root_dir=str(root), enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False, **options)  # fmt: skip


def rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.convert("RGB")


# ---- drawing -------------------------------------------------------------------------------------------------


def test_a_box_is_drawn_on_its_outermost_pixels_in_its_class_colour() -> None:
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    drawn = draw_boxes(image, torch.tensor([[5.0, 6.0, 15.0, 12.0]]), torch.tensor([2]), width=1)
    colour = torch.tensor(class_colour(2), dtype=torch.uint8)
    for x, y in [(5, 6), (14, 6), (5, 11), (14, 11), (10, 6), (5, 9)]:  # corners and edges (x2, y2 exclusive)
        assert drawn[:, y, x].tolist() == colour.tolist(), (x, y)
    for x, y in [(10, 9), (15, 9), (4, 9), (10, 12), (10, 5), (0, 0)]:  # inside and outside the outline
        assert drawn[:, y, x].tolist() == [0, 0, 0], (x, y)
    assert image.sum() == 0  # the input is left alone


def test_a_box_caption_is_written_and_no_box_leaves_the_image_as_it_was() -> None:
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    boxes, labels = torch.tensor([[2.0, 2.0, 58.0, 38.0]]), torch.tensor([1])
    plain = draw_boxes(image, boxes, labels, width=1)
    captioned = draw_boxes(image, boxes, labels, ["circle 0.93"], width=1)
    inside = (slice(None), slice(4, 20), slice(4, 50))
    assert plain[inside].sum() == 0 and captioned[inside].sum() > 0  # a filled label where the caption goes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision warns on an empty box list; draw_boxes does not call it
        assert draw_boxes(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)) is image


def test_reversed_or_outside_boxes_are_drawn_not_refused() -> None:
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    drawn = draw_boxes(
        image, torch.tensor([[15.0, 12.0, 5.0, 6.0], [-5.0, -5.0, 40.0, 40.0]]), torch.tensor([1, 3])
    )
    assert drawn[:, 6, 5].tolist() == list(class_colour(1))
    assert drawn[:, 0, 0].tolist() == list(class_colour(3))  # clipped to the image's border


def test_masks_paint_each_class_leave_the_background_and_grey_the_ignored_pixels() -> None:
    image = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    semantic = torch.zeros(16, 16, dtype=torch.long)
    semantic[1:7, 1:7] = 2
    semantic[8:14, 8:14] = 3
    semantic[0, 15] = 255
    drawn = draw_semantic(image, semantic, alpha=0.5, outline=1)
    for label, (y, x) in ((2, (3, 4)), (3, (10, 11))):
        colour = list(class_colour(label))
        assert drawn[:, y, x].tolist() == [int(100 * 0.5 + c * 0.5) for c in colour]  # inside: translucent
        assert drawn[:, y - 2, x].tolist() == colour  # on the region's edge: opaque
    assert drawn[:, 0, 15].tolist() == list(IGNORE_COLOUR)
    assert (drawn[:, semantic == 0] == 100).all()
    assert class_colour(2) != class_colour(3) and len({class_colour(k) for k in range(1, 21)}) == 20
    assert torch.equal(draw_semantic(image, torch.zeros(16, 16, dtype=torch.long)), image)


def test_a_legend_names_the_painted_classes_in_their_colours() -> None:
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    drawn = draw_legend(image, [(1, "circle"), (3, "triangle")])
    assert drawn[:, 3, 3].tolist() == list(class_colour(1)) and drawn[:, 17, 3].tolist() == list(
        class_colour(3)
    )
    assert drawn[:, 40:, :].sum() == 0 and draw_legend(image, []) is image


def test_instance_masks_become_one_class_per_pixel_the_last_on_top() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, :2, :2] = 1
    masks[1, 1:3, 1:3] = 1
    semantic = paint_instances(masks, torch.tensor([3, 1]))
    assert semantic[0, 0] == 3 and semantic[1, 1] == 1 and semantic[2, 2] == 1 and semantic[3, 3] == 0


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(48, 48, 4.0), (128, 128, 2.0), (28, 20, 7.0), (300, 200, 1.0), (1024, 512, 0.5), (150, 100, 192 / 150)],
)  # 150 x 2 = 300 would pass max_side 256: the exact factor to 192 instead
def test_small_images_are_enlarged_by_a_whole_factor_and_large_ones_shrunk(
    height: int, width: int, scale: float
) -> None:
    max_side = 256 if height == 150 else 512
    assert overlay_scale(height, width, 192, max_side) == pytest.approx(scale)


def test_images_of_different_sizes_keep_their_shape_on_square_tiles() -> None:
    none = Overlay(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), [], None, "")
    pictures = [torch.zeros(3, 40, 60), torch.full((3, 30, 30), 0.5)]
    figure = overlay_figure(pictures, [(none, none), (none, none)])
    # 60 px wide x 4 = 240 px: the tile side; the 30 px image x 7 = 210 px, centred with white around it
    assert figure.size == figure_size(2, side=240)
    x, y = tile_origin(0, side=240)
    assert figure.getpixel((x + 120, y + 10)) == (255, 255, 255)  # above the 160 px high first image
    assert figure.getpixel((x + 120, y + 120)) == (0, 0, 0)
    x, y = tile_origin(2, side=240)
    assert figure.getpixel((x + 10, y + 120)) == (255, 255, 255)  # left of the 210 px second image
    assert figure.getpixel((x + 20, y + 120)) == figure.getpixel((x + 220, y + 120)) == (128, 128, 128)
    assert figure.getpixel((x + 230, y + 120)) == (255, 255, 255)


def test_names_come_from_the_object_classes_with_the_background_first() -> None:
    assert label_names(("circle", "square"), 3) == ["background", "circle", "square"]
    assert label_names(["background", "cat", "dog"], 3) == ["background", "cat", "dog"]  # names it already
    assert label_names(None, 4) == ["background"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [({"num_images": 0}, "num_images"), ({"score_threshold": 1.5}, "score_threshold"),
     ({"min_side": 600}, "min_side <= max_side"), ({"alpha": -0.1}, "alpha"),
     ({"every_n_epochs": -1}, "every_n_epochs")],
)  # fmt: skip
def test_bad_options_are_refused_in_one_line(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ZooError, match=fragment) as error:
        PredictionOverlays(**options)
    assert "\n" not in str(error.value)


# ---- the callback ----------------------------------------------------------------------------------------------


def test_localization_fit_and_test_draw_true_and_predicted_boxes_and_send_them_to_wandb(
    tmp_path: Path,
) -> None:
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    data = ShapesDataModule("localization", image_size=48, num_train=6, num_val=6, num_test=6, batch_size=3)
    task = LocalizationTask("resnet20")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="overlays")
    trainer = quiet_trainer(tmp_path, [PredictionOverlays(num_images=4)], logger=logger, max_epochs=1,
                            limit_train_batches=1, limit_val_batches=2)  # fmt: skip
    try:
        trainer.fit(task, datamodule=data)
        trainer.test(task, datamodule=data, verbose=False)
    finally:
        wandb.finish()
    figures = tmp_path / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [
        "epoch000-val-overlays.png",
        "epoch001-test-overlays.png",
    ]
    figure = rgb(figures / "epoch000-val-overlays.png")
    assert figure.size == figure_size(4)  # 3 images from the first batch, 1 from the second
    # each truth tile has its true box's bottom-right corner in its class's colour (48 px images x 4)
    for index in range(4):
        _, target = data.datasets["val"][index]
        x2, y2 = (int(v) * 4 for v in target["boxes"][0, 2:])
        x, y = tile_origin(2 * index)
        assert figure.getpixel((x + x2 - 1, y + y2 - 1)) == class_colour(int(target["labels"][0])), index
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    media = run / "files" / "media" / "images"
    (val,) = media.glob("val/overlays_*.png")
    (test,) = media.glob("test/overlays_*.png")
    assert rgb(val).size == rgb(test).size == figure_size(4)
    (records,) = run.glob("*.wandb")
    history = records.read_bytes()
    assert b"val/overlays" in history and b'"images/separated"' in history


class Stub(BaseTask):
    """A task of a declared kind whose steps return :meth:`outputs` of the batch: no network, no metrics."""

    kind: ClassVar[TaskKind]

    def configure_models(self) -> None:
        self.weight = nn.Parameter(torch.ones(()))

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({})

    def step(self, batch: Any, stage: Stage) -> dict[str, Any]:
        return {"loss": self.weight * 0, **self.outputs(batch)}

    def outputs(self, batch: Any) -> dict[str, Any]:
        raise NotImplementedError


class StubLocalizer(Stub):
    """Calls every object a square (0-based class 1, label 2) in the box (4, 4, 40, 40)."""

    kind = "localization"

    def outputs(self, batch: Any) -> dict[str, Any]:
        images, target = batch
        logits = torch.tensor([[0.0, 3.0, 0.0]]).expand(len(images), -1) * self.weight
        boxes = torch.tensor([[4.0, 4.0, 40.0, 40.0]]).expand(len(images), -1)
        return {
            "logits": logits,
            "boxes": boxes,
            "target": target["labels"] - 1,
            "target_boxes": target["boxes"],
        }


def test_the_predicted_class_and_box_are_drawn_in_the_data_s_labels(tmp_path: Path) -> None:
    data = ShapesDataModule("localization", image_size=48, num_val=2, batch_size=2)
    quiet_trainer(tmp_path, [PredictionOverlays()]).validate(StubLocalizer(), datamodule=data, verbose=False)
    figure = rgb(tmp_path / "figures" / "epoch000-val-overlays.png")
    assert figure.size == figure_size(2)  # fewer images than num_images: all of them
    for tile in (1, 3):
        x, y = tile_origin(tile)
        assert figure.getpixel((x + 40 * 4 - 1, y + 40 * 4 - 1)) == class_colour(2)


BOXES = torch.tensor([[4.0, 4.0, 20.0, 20.0], [24.0, 24.0, 44.0, 44.0]])


class StubDetector(Stub):
    """Finds the same two squares in every image: a sure one and a doubtful one."""

    kind = "detection"

    def outputs(self, batch: Any) -> dict[str, Any]:
        images, targets = batch
        found = {
            "boxes": BOXES * self.weight,
            "labels": torch.tensor([2, 3]),
            "scores": torch.tensor([0.9, 0.3]),
        }
        return {"preds": [dict(found) for _ in images], "target": list(targets)}


def test_detections_above_the_score_threshold_are_drawn(tmp_path: Path) -> None:
    data = ShapesDataModule("detection", image_size=48, num_val=5, num_test=2, batch_size=2)
    trainer = quiet_trainer(tmp_path, [PredictionOverlays(num_images=3)])
    trainer.validate(StubDetector(), datamodule=data, verbose=False)
    trainer.test(StubDetector(), datamodule=data, verbose=False)
    figure = rgb(tmp_path / "figures" / "epoch000-val-overlays.png")
    assert figure.size == figure_size(3)
    assert rgb(tmp_path / "figures" / "epoch000-test-overlays.png").size == figure_size(2)
    for index in range(3):
        x, y = tile_origin(2 * index + 1)
        assert figure.getpixel((x + 20 * 4 - 1, y + 20 * 4 - 1)) == class_colour(2)  # score 0.9: drawn
        assert figure.getpixel((x + 44 * 4 - 1, y + 44 * 4 - 1)) != class_colour(3)  # score 0.3: not drawn
    lower = quiet_trainer(tmp_path / "low", [PredictionOverlays(num_images=1, score_threshold=0.25)])
    lower.validate(StubDetector(), datamodule=data, verbose=False)
    x, y = tile_origin(1)
    low = rgb(tmp_path / "low" / "figures" / "epoch000-val-overlays.png")
    assert low.size == figure_size(1) and low.getpixel((x + 44 * 4 - 1, y + 44 * 4 - 1)) == class_colour(3)


class StubSegmenter(Stub):
    """Calls every bright pixel a circle (class 1) and the rest background."""

    kind = "segmentation"
    num_classes = 4

    def outputs(self, batch: Any) -> dict[str, Any]:
        images, masks = batch
        return {"preds": (images.amax(1) > 0.5).long(), "target": masks}


def test_segmentation_paints_the_predicted_classes(tmp_path: Path) -> None:
    data = ShapesDataModule("segmentation", image_size=48, num_val=4, batch_size=4)
    trainer = quiet_trainer(tmp_path, [PredictionOverlays(num_images=2, alpha=1.0)])
    trainer.validate(StubSegmenter(), datamodule=data, verbose=False)
    figure = rgb(tmp_path / "figures" / "epoch000-val-overlays.png")
    assert figure.size == figure_size(2)
    images, semantic = next(iter(data.val_dataloader()))
    for index in range(2):
        bright = images[index].amax(0) > 0.5
        y, x = (int(v) for v in bright.nonzero()[0])  # a pixel the stub calls a circle
        ox, oy = tile_origin(2 * index + 1)
        assert figure.getpixel((ox + 4 * x, oy + 4 * y)) == class_colour(1)
        y, x = (int(v) for v in (semantic[index] == 0).nonzero()[-1])  # background: not painted
        ox, oy = tile_origin(2 * index)
        picture = tuple(round(float(c) * 255) for c in images[index][:, y, x])
        assert figure.getpixel((ox + 4 * x, oy + 4 * y)) == picture


class Classifier(L.LightningModule):
    """Not a zoo task: it declares no kind."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 8 * 8, 2)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(images.flatten(1))

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        return {"logits": self(batch[0]).detach(), "target": batch[1]}


def test_a_module_that_is_not_a_zoo_task_gets_no_figure_and_one_warning(tmp_path: Path) -> None:
    loader = DataLoader(TensorDataset(torch.rand(6, 3, 8, 8), torch.tensor([0, 1] * 3)), batch_size=2)
    trainer = quiet_trainer(tmp_path, [PredictionOverlays()])
    with pytest.warns(UserWarning, match="PredictionOverlays: Classifier, not a zoo task,") as caught:
        trainer.validate(Classifier(), loader, verbose=False)
        trainer.validate(Classifier(), loader, verbose=False)
    assert len([w for w in caught if "PredictionOverlays" in str(w.message)]) == 1
    assert not (tmp_path / "figures").exists()


class DeclaredClassifier(StubSegmenter):
    """Returns a segmenter's outputs, but declares itself a classifier."""

    kind = "classification"


def test_the_task_s_declared_kind_not_its_outputs_decides_what_is_drawn(tmp_path: Path) -> None:
    images, masks = torch.rand(4, 3, 16, 16), torch.zeros(4, 16, 16, dtype=torch.long)
    loader = DataLoader(TensorDataset(images, masks), batch_size=2)  # plain loaders: no data kind to check
    trainer = quiet_trainer(tmp_path, [PredictionOverlays()])
    with pytest.warns(UserWarning, match="a classification task has no boxes or masks to draw"):
        trainer.validate(DeclaredClassifier(), loader, verbose=False)
    assert not (tmp_path / "figures").exists()
    quiet_trainer(tmp_path, [PredictionOverlays()]).validate(StubSegmenter(), loader, verbose=False)
    assert rgb(tmp_path / "figures" / "epoch000-val-overlays.png").size == figure_size(4)


class WrongSegmenter(StubSegmenter):
    """Returns a score per image, not a class per pixel."""

    def outputs(self, batch: Any) -> dict[str, Any]:
        images, masks = batch
        return {"logits": images.mean((2, 3)) * self.weight, "target": masks}


def test_a_task_whose_outputs_do_not_fit_its_kind_gets_no_figure_and_one_warning(tmp_path: Path) -> None:
    data = ShapesDataModule("segmentation", image_size=48, num_val=4, batch_size=2)
    trainer = quiet_trainer(tmp_path, [PredictionOverlays()])
    with pytest.warns(
        UserWarning, match=r"segmentation task must return preds \(B, H, W\) and target"
    ) as caught:
        trainer.validate(WrongSegmenter(), datamodule=data, verbose=False)
    assert len([w for w in caught if "PredictionOverlays" in str(w.message)]) == 1
    assert not (tmp_path / "figures").exists()
