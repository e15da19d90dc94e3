"""Semantic segmentation: the FCNs, torchvision's FCN and its weights, the task's loss and metrics, the poly
schedule, bad input, and both recipes through the command line on fabricated data."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import num_params, on_meta
from PIL import Image
from torch import nn

from zoo.cli import main
from zoo.data import ShapesDataModule
from zoo.errors import DataError, ZooError
from zoo.models import create_model, list_models, weights
from zoo.models.fcn import FCN, _vgg_stages
from zoo.models.fcn_layers import BilinearDeconv, bilinear_kernel
from zoo.tasks import SegmentationTask
from zoo.tasks.segmentation import pixel_cross_entropy, voc_palette

FCNS = ["fcn16s_vgg16", "fcn32s_vgg16", "fcn8s_resnet18", "fcn8s_resnet50", "fcn8s_vgg16", "fcn_resnet50"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---- the networks ----------------------------------------------------------------------------------------------


def test_the_registered_segmentation_networks() -> None:
    assert list_models("fcn*") == FCNS


@pytest.mark.parametrize("name", FCNS)
def test_logits_have_the_input_size(name: str) -> None:
    model = create_model(name, num_classes=3).eval()
    with torch.no_grad():
        for height, width in ((37, 45), (64, 33)):  # odd sides, not multiples of any stride
            assert model(torch.rand(2, 3, height, width)).shape == (2, 3, height, width)


@pytest.mark.parametrize("name", ["fcn8s_resnet18", "fcn_resnet50"])  # our FCN class, torchvision's
def test_gradients_reach_the_first_layer(name: str) -> None:
    model = create_model(name, num_classes=3, **({"aux_loss": True} if name == "fcn_resnet50" else {}))
    # Long et al.'s score layers start at zero, which would stop every gradient to the backbone
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.out_channels == 3:
            nn.init.normal_(module.weight, std=0.01)
    images = torch.rand(2, 3, 37, 45)
    outputs = model.forward_aux(images) if name == "fcn_resnet50" else (model(images),)
    sum(out.square().mean() for out in outputs).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    first = next(p for n, p in trainable if p.ndim == 4)  # the first convolution of the backbone
    assert first.grad is not None and first.grad.abs().sum() > 0
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    # the final 8x upsampling stays bilinear (Long et al.); torchvision's FCN interpolates instead
    assert frozen == ([] if name == "fcn_resnet50" else ["upsample.deconv.weight"])


def test_in_channels_one() -> None:
    model = create_model("fcn8s_resnet18", num_classes=2, in_channels=1)
    assert model(torch.rand(1, 1, 33, 31)).shape == (1, 2, 33, 31)
    assert model.mean.shape == (1, 1, 1, 1)  # no ImageNet statistics for one channel
    torchvision_fcn = create_model("fcn_resnet50", num_classes=2, in_channels=1)
    assert torchvision_fcn(torch.rand(1, 1, 40, 40)).shape == (1, 2, 40, 40)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_deconvolutions_start_as_bilinear_interpolation(factor: int) -> None:
    up = BilinearDeconv(3, factor)
    x = torch.randn(2, 3, 5, 7)
    with torch.no_grad():
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        torch.testing.assert_close(up(x), expected, atol=1e-5, rtol=1e-5)
        constant = up(torch.full((1, 3, 4, 4), 2.5))
    torch.testing.assert_close(constant, torch.full((1, 3, 4 * factor, 4 * factor), 2.5))  # borders too
    # Long et al.'s upsample_filt(4): the outer product of (0.25, 0.75, 0.75, 0.25) with itself
    assert bilinear_kernel(2).tolist()[0] == pytest.approx([0.0625, 0.1875, 0.1875, 0.0625])
    with pytest.raises(ValueError, match="even"):
        BilinearDeconv(3, 3)


def test_every_deconvolution_of_an_fcn_starts_bilinear_and_the_scores_start_at_zero() -> None:
    model = create_model("fcn8s_resnet18", num_classes=4)
    deconvs = [m for m in model.modules() if isinstance(m, BilinearDeconv)]
    assert [d.factor for d in deconvs] == [2, 2, 8]
    for deconv in deconvs:
        with torch.no_grad():
            out = deconv(torch.ones(1, 4, 3, 3))
        torch.testing.assert_close(out, torch.ones_like(out))
    assert isinstance(model, FCN)
    assert model(torch.rand(1, 3, 64, 64)).abs().max() == 0  # the score layers start at zero


def test_fcn_resnet50_counts_as_torchvision() -> None:
    for aux, expected in ((True, 35_322_218), (False, 32_957_013)):
        ours = num_params(on_meta(create_model, name="fcn_resnet50", num_classes=21, aux_loss=aux))
        theirs = num_params(
            on_meta(torchvision.models.segmentation.fcn_resnet50, weights_backbone=None, aux_loss=aux)
        )
        assert ours == theirs == expected


def test_fcn8s_vgg16_counts_as_long_et_al() -> None:
    # VGG-16's convolutions, fc6 (7x7, 512 -> 4096) and fc7 (1x1) as convolutions, the three 1x1 score layers
    # (score_fr, score_pool4, score_pool3) and the bias-free deconvolutions (two 4x4 and one 16x16), 21 classes
    convs = 14_714_688
    fc6, fc7 = 7 * 7 * 512 * 4096 + 4096, 4096 * 4096 + 4096
    scores = (4096 + 1) * 21 + (512 + 1) * 21 + (256 + 1) * 21
    deconvs = 2 * 21 * 21 * 4 * 4 + 21 * 21 * 16 * 16
    count = num_params(on_meta(create_model, name="fcn8s_vgg16"))
    assert count == convs + fc6 + fc7 + scores + deconvs == 134_489_759
    assert round(count / 1e6) == 134  # Long et al. 2015, Table 1: FCN-VGG16, 134M parameters
    # FCN-32s: no pool4 and pool3 scores, one 64x64 deconvolution instead of three
    fcn32s = count - (512 + 1) * 21 - (256 + 1) * 21 - deconvs + 21 * 21 * 64 * 64
    assert num_params(on_meta(create_model, name="fcn32s_vgg16")) == fcn32s


def test_vgg_dense_layers_become_fc6_and_fc7() -> None:
    vgg = create_model("vgg11").eval()  # the ImageNet head; its weights are copied into the convolutions
    stages, channels, head = _vgg_stages(vgg, pretrained=True, dropout=0.5)
    assert channels == (256, 512, 4096)
    head.eval()
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        pool5 = nn.Sequential(*stages)(images)
        dense = vgg.classifier[:5](torch.flatten(vgg.avgpool(pool5), 1))  # fc6, relu, dropout, fc7, relu
        # at 224x224 pool5 is 7x7: the middle of fc6's output sees all of it, as the dense fc6 does
        torch.testing.assert_close(head(pool5)[0, :, 3, 3], dense[0], atol=1e-4, rtol=1e-4)


# ---- weights -----------------------------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private weights table and download folder; returns the folder files are served from (file:// URLs)."""
    monkeypatch.setattr(weights, "_WEIGHTS", {k: dict(v) for k, v in weights._WEIGHTS.items()})
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "cache"))
    (tmp_path / "served").mkdir()
    return tmp_path / "served"


def _serve(state: dict[str, torch.Tensor], folder: Path, stem: str) -> tuple[str, str]:
    path = folder / f"{stem}.pth"
    torch.save(state, path)
    return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()


def test_coco_voc_weights_are_torchvisions() -> None:
    ours = weights.find_weights("fcn_resnet50", "coco_voc")
    theirs = torchvision.models.segmentation.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1
    assert ours.url == theirs.url and Path(theirs.url).stem.endswith(ours.sha256)
    metrics = theirs.meta["_metrics"]["COCO-val2017-VOC-labels"]
    assert ours.metrics == {"coco_voc_miou": metrics["miou"], "coco_voc_pixel_acc": metrics["pixel_acc"]}
    assert ours.num_classes == len(theirs.meta["categories"]) == 21
    assert ours.model_kwargs == {"aux_loss": True}


def test_coco_voc_weights_download_and_give_torchvisions_outputs(served: Path) -> None:
    theirs = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, aux_loss=True
    ).eval()
    url, digest = _serve(theirs.state_dict(), served, "fcn_resnet50_coco")
    spec = weights.find_weights("fcn_resnet50", "coco_voc")
    weights._WEIGHTS["fcn_resnet50"]["coco_voc"] = dataclasses.replace(spec, url=url, sha256=digest[:8])
    ours = create_model("fcn_resnet50", weights="coco_voc").eval()
    assert ours.has_aux  # the weights bring their auxiliary head
    images = torch.rand(1, 3, 48, 40)
    normalised = (images - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = theirs(normalised)
        torch.testing.assert_close(ours(images), expected["out"])
        _, aux = ours.forward_aux(images)
        torch.testing.assert_close(aux, expected["aux"])
    with pytest.raises(ZooError, match=r"need aux_loss=True, not False"):
        create_model("fcn_resnet50", weights="coco_voc", aux_loss=False)
    with pytest.raises(ZooError, match=r"num_classes=21, not 4"):
        create_model("fcn_resnet50", weights="coco_voc", num_classes=4)


def test_imagenet_backbone_weights_load_through_the_registry(served: Path) -> None:
    source = create_model("resnet18")
    url, digest = _serve(source.state_dict(), served, "resnet18-imagenet")
    spec = weights.find_weights("resnet18", "imagenet")
    weights._WEIGHTS["resnet18"]["imagenet"] = dataclasses.replace(spec, url=url, sha256=digest)
    model = create_model("fcn8s_resnet18", num_classes=4, weights_backbone="imagenet")
    assert isinstance(model, FCN)
    torch.testing.assert_close(model.to_stride32[0].conv1.weight, source.layer4[0].conv1.weight)
    torch.testing.assert_close(model.to_stride8[0][0].weight, source.conv1.weight)


def test_a_run_checkpoint_loads_as_weights(tmp_path: Path) -> None:
    task = SegmentationTask("fcn8s_resnet18", num_classes=4)
    nn.init.normal_(task.net.score32.weight)
    path = tmp_path / "best.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    model = create_model("fcn8s_resnet18", weights=str(path)).eval()
    images = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(images), task.eval()(images))


# ---- the task ---------------------------------------------------------------------------------------------------


def test_the_loss_counts_only_the_pixels_not_ignored() -> None:
    logits = torch.randn(2, 4, 5, 6)
    masks = torch.full((2, 5, 6), 255)
    known = [(0, 1, 2, 3), (1, 4, 5, 0), (1, 0, 0, 2)]  # (image, row, column, class)
    for image, row, column, label in known:
        masks[image, row, column] = label
    expected = -sum(logits[i, :, r, c].log_softmax(0)[k] for i, r, c, k in known) / len(known)
    torch.testing.assert_close(pixel_cross_entropy(logits, masks), expected)
    task = SegmentationTask("fcn8s_resnet18", num_classes=4)
    all_ignored = pixel_cross_entropy(logits.requires_grad_(), torch.full((2, 5, 6), 255))
    assert all_ignored.item() == 0 and all_ignored.requires_grad  # not NaN: the run goes on
    assert task.ignore_index == 255


def test_miou_and_pixel_accuracy_against_a_hand_computed_case() -> None:
    task = SegmentationTask("fcn8s_resnet18", num_classes=3)
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    predicted = torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 2]]])  # the last two pixels are ignored
    # class 0: intersection 1, union {0,1,5} = 3; class 1: 2 / 3 ({1,2,3}); class 2: 1 / 2 ({4,5})
    # pixel accuracy: 4 of the 6 counted pixels
    metrics = task.val_metrics
    metrics.update(predicted, target)
    result = metrics.compute()
    assert result["val_miou"].item() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert result["val_pixel_acc"].item() == pytest.approx(4 / 6)
    task.class_iou.update(predicted, target)
    assert task.class_iou.compute().tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])


def test_step_with_an_auxiliary_head_adds_half_its_loss() -> None:
    task = SegmentationTask("fcn_resnet50", num_classes=3, model_kwargs={"aux_loss": True})
    task.log = task.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign,assignment]
    images, masks = torch.rand(1, 3, 32, 32), torch.randint(0, 3, (1, 32, 32))
    task.eval()  # no dropout, fixed batch statistics: both passes compute the same
    with torch.no_grad():
        out, aux = task.net.forward_aux(images)
        loss = task.step((images, masks), "train")["loss"]
        expected = F.cross_entropy(out, masks) + 0.5 * F.cross_entropy(aux, masks)
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(task.step((images, masks), "val")["loss"], F.cross_entropy(out, masks))


class _Trainer:
    def __init__(self, datamodule: object) -> None:
        self.datamodule = datamodule


def test_per_class_iou_is_named_background_then_the_datas_classes() -> None:
    task = SegmentationTask("fcn8s_resnet18", num_classes=4)
    assert task.class_names() == ["0", "1", "2", "3"]
    task._trainer = _Trainer(ShapesDataModule("segmentation", image_size=48))  # type: ignore[assignment]
    assert task.class_names() == ["background", "circle", "square", "triangle"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"model": "fcn8s_resnet"},
            r"^unknown model 'fcn8s_resnet' \(did you mean: fcn8s_resnet50, fcn8s_resnet18",
        ),
        ({"model": "resnet18"}, r"^model 'resnet18' is an image classifier"),
        ({"loss": "dice"}, r"^loss must be one of ce, got 'dice'$"),
        ({"num_classes": 1}, r"need >= 2, got 1$"),
        ({"aux_weight": -1.0}, r"^aux_weight must be 0 or more"),
        ({"ignore_index": 2}, r"^ignore_index 2 is one of the 4 classes"),
        (
            {"model_kwargs": {"stem": "cifar"}},
            r"^cannot build model 'fcn8s_resnet18': fcn8s_resnet18 has no option stem; it takes weights_backbone$",
        ),
    ],
)
def test_bad_options_are_one_line(kwargs: dict[str, Any], match: str) -> None:
    options = {"model": "fcn8s_resnet18", "num_classes": 4, **kwargs}
    with pytest.raises(ZooError, match=match) as error:
        SegmentationTask(**options)
    assert "\n" not in str(error.value)


def test_num_classes_must_match_the_data_and_the_masks() -> None:
    task = SegmentationTask("fcn8s_resnet18", num_classes=21)
    task._trainer = _Trainer(ShapesDataModule("segmentation", image_size=48))  # type: ignore[assignment]
    with pytest.raises(
        DataError, match=r"num_classes=21 but ShapesDataModule has 4 classes; set --model\.num_classes 4"
    ):
        task.setup("fit")
    small = SegmentationTask("fcn8s_resnet18", num_classes=3)
    # two images: batch norm trains on them in the step
    batch = (torch.rand(2, 3, 32, 32), torch.full((2, 32, 32), 3))
    with pytest.raises(
        DataError, match=r"^a mask holds class 3, outside 0\.\.2 and not the ignore index 255;"
    ):
        small.step(batch, "val")  # evaluation refuses the mask at once
    # training notes it on the device and raises at the step check, naming the step (each step without a trainer)
    with pytest.raises(
        DataError,
        match=r"^a mask holds class 3, outside 0\.\.2 and not the ignore index 255; .*\(step 0, epoch 0",
    ):
        small.training_step(batch, 0)


def test_predictions_are_palette_pngs_of_class_indices(tmp_path: Path) -> None:
    task = SegmentationTask("fcn8s_resnet18", num_classes=4).eval()
    images, masks = torch.rand(2, 3, 40, 36), torch.zeros(2, 40, 36, dtype=torch.long)
    with torch.no_grad():
        batch = task.predict_step((images, masks), 0)
    assert batch["predicted"].shape == (2, 40, 36) and torch.equal(batch["label"], masks)
    batch["predicted"][1, :5, :5] = 3
    line = task.write_predictions([batch], tmp_path / "masks")
    assert line.startswith("2 masks written to")
    with Image.open(tmp_path / "masks" / "000001.png") as png:
        written = np.array(png)
    assert png.mode == "P" and np.array_equal(written, batch["predicted"][1].numpy().astype(np.uint8))
    palette = voc_palette()
    assert palette[15 * 3 : 16 * 3] == [192, 128, 128]  # VOC's person
    assert palette[255 * 3 :] == [224, 224, 192]  # VOC's border


# ---- the recipes through the command line -----------------------------------------------------------------------


def _fit(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main("fit", args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    return json.loads((Path(last.removeprefix("run folder: ")) / "metrics.json").read_text())


def test_a_class_count_that_disagrees_with_the_data_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--recipe", "fcn_shapes", "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path), "--model.init_args.num_classes", "3"]  # fmt: skip
    assert main("fit", args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--model.num_classes 4" in err


def test_a_trained_run_predicts_png_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = ["--data.init_args.num_train", "16", "--data.init_args.num_val", "4", "--data.init_args.num_test", "6",
             "--data.init_args.batch_size", "4", "--data.init_args.image_size", "48"]  # fmt: skip
    args = ["--recipe", "fcn_shapes", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu", "--trainer.logger",
            "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(tmp_path / "runs"), *small]  # fmt: skip
    metrics = _fit(args, capsys)
    best = Path(metrics["best_checkpoint"])
    assert main("predict", ["--ckpt_path", str(best), "--trainer.enable_progress_bar", "false"]) == 0
    assert "6 masks written to" in capsys.readouterr().out
    pngs = sorted((best.parent / "best-predictions").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(6)]
    with Image.open(pngs[0]) as png:
        assert png.size == (48, 48) and set(np.unique(np.array(png)).tolist()) <= {0, 1, 2, 3}
