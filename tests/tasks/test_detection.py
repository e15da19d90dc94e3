"""Object detection: the Faster R-CNN builders, DetectionTask and its mAP (also over two processes), bad input,
and the three detection recipes through the command line on fabricated VOC and COCO files and the shapes set."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from conftest import DETECTION_SMALL as SMALL
from conftest import detection_recipe_args, num_params, on_meta
from torch import Tensor
from torchvision.ops.misc import FrozenBatchNorm2d

from zoo.cli import main
from zoo.data import ShapesDataModule
from zoo.errors import DataError, ZooError
from zoo.models import create_model, list_models, weights
from zoo.models.weights import UnknownWeightsError
from zoo.tasks import DetectionTask
from zoo.tasks.detection import detection_metrics

TORCHVISION_OPTIONS = {k: v for k, v in SMALL.items() if k != "representation_size"}
DETECTORS = {
    "fasterrcnn_resnet18_fpn": SMALL,
    "fasterrcnn_resnet50_fpn": SMALL,
    "fasterrcnn_vgg16": SMALL,
    "fasterrcnn_mobilenet_v3_large_fpn": TORCHVISION_OPTIONS,
    "fasterrcnn_mobilenet_v3_large_320_fpn": TORCHVISION_OPTIONS,
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def shapes_batch(count: int = 2, size: int = 64) -> tuple[list[Tensor], list[dict[str, Any]]]:
    data = ShapesDataModule(
        "detection", image_size=size, num_train=count, num_val=1, num_test=1, batch_size=count
    )
    return next(iter(data.train_dataloader()))


def plain(targets: list[dict[str, Any]]) -> list[dict[str, Tensor]]:
    return [{"boxes": t["boxes"].as_subclass(Tensor), "labels": t["labels"]} for t in targets]


@pytest.fixture
def offline_backbone_weights(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ImageNet (and COCO) weights without a download: torchvision's architecture, randomly initialised.

    Returns the names of the weights that were read, in order.
    """
    read: list[str] = []

    def fake_read(spec: weights.Weights) -> dict[str, Tensor]:
        read.append(spec.name)
        if spec.model.startswith("fasterrcnn_"):
            build = getattr(torchvision.models.detection, spec.model)
            model = build(weights=None, weights_backbone=None, num_classes=spec.num_classes)
        else:
            model = getattr(torchvision.models, spec.model)()
        return model.state_dict()

    monkeypatch.setattr(weights, "_ensure_local", lambda spec: None)
    monkeypatch.setattr(weights, "read_weights", fake_read)
    return read


# ---- the builders ----------------------------------------------------------------------------------------------


def test_the_detectors_are_registered() -> None:
    assert list_models("fasterrcnn_*") == sorted(DETECTORS)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_training_gives_losses_and_evaluation_gives_detections(name: str) -> None:
    net = create_model(name, num_classes=4, **DETECTORS[name])
    images, targets = shapes_batch()
    losses = net([i.as_subclass(Tensor) for i in images], plain(targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    net.eval()
    with torch.no_grad():
        detections = net([torch.rand(3, 50, 70), torch.rand(3, 64, 40)])
    assert len(detections) == 2
    for found, (height, width) in zip(detections, [(50, 70), (64, 40)], strict=True):
        assert set(found) == {"boxes", "labels", "scores"}
        boxes = found["boxes"]
        assert boxes.shape == (len(found["labels"]), 4) == (len(found["scores"]), 4)
        # in pixels of the image as given (the detector resized it), up to rounding
        assert (boxes[:, 2:] >= boxes[:, :2]).all() and boxes.min() >= 0
        assert boxes[:, 2].max() <= width + 1e-3 and boxes[:, 3].max() <= height + 1e-3
        assert found["labels"].dtype == torch.int64 and set(found["labels"].tolist()) <= {1, 2, 3}


def test_resnet50_fpn_is_torchvisions(offline_backbone_weights: list[str]) -> None:
    # torchvision's published count is with frozen batch norms (a pretrained backbone), whose affine parameters
    # are buffers; from scratch they are parameters (53,120 more), as in torchvision
    assert (
        num_params(on_meta(create_model, name="fasterrcnn_resnet50_fpn", weights_backbone="imagenet"))
        == 41_755_286
    )
    assert offline_backbone_weights == ["resnet50.imagenet"]
    theirs = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, **TORCHVISION_OPTIONS
    )
    with torch.device("meta"):
        ours = create_model("fasterrcnn_resnet50_fpn", **{**SMALL, "representation_size": 1024})
    ours.load_state_dict(theirs.state_dict(), assign=True, strict=True)  # same keys, same shapes
    images = [torch.rand(3, 60, 80), torch.rand(3, 64, 48)]
    with torch.no_grad():
        for mine, reference in zip(ours.eval()(images), theirs.eval()(images), strict=True):
            assert len(mine["boxes"]) > 0
            for key in ("boxes", "labels", "scores"):
                torch.testing.assert_close(mine[key], reference[key], rtol=0, atol=0)


def test_mobilenet_detectors_are_torchvisions(offline_backbone_weights: list[str]) -> None:
    for name, published in [
        ("fasterrcnn_mobilenet_v3_large_fpn", 19_386_354),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 19_386_354),
    ]:
        assert num_params(on_meta(create_model, name=name, weights_backbone="imagenet")) == published
        ours = on_meta(create_model, name=name)
        theirs = on_meta(getattr(torchvision.models.detection, name), weights=None, weights_backbone=None)
        assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
            (k, v.shape) for k, v in theirs.state_dict().items()
        ]
        assert (ours.transform.min_size, ours.rpn.score_thresh) == (
            theirs.transform.min_size,
            theirs.rpn.score_thresh,
        )
    assert offline_backbone_weights == ["mobilenet_v3_large.imagenet"] * 2


def test_a_pretrained_backbone_freezes_batch_norm_and_early_stages(
    offline_backbone_weights: list[str],
) -> None:
    net = on_meta(create_model, name="fasterrcnn_resnet18_fpn", weights_backbone="imagenet")
    body = net.backbone.body
    assert isinstance(body.bn1, FrozenBatchNorm2d) and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()
    )
    trainable = {n.split(".")[0] for n, p in body.named_parameters() if p.requires_grad}
    assert trainable == {"layer2", "layer3", "layer4"}  # torchvision's default: the last three stages
    whole = on_meta(
        create_model, name="fasterrcnn_resnet18_fpn", weights_backbone="imagenet", trainable_backbone_layers=5
    )
    assert all(p.requires_grad for p in whole.parameters())
    vgg = on_meta(create_model, name="fasterrcnn_vgg16", weights_backbone="imagenet")
    frozen = [
        i for i, m in enumerate(vgg.backbone.features) if any(not p.requires_grad for p in m.parameters())
    ]
    assert frozen == [0, 2, 5, 7]  # conv1_1 to conv2_2: Ren et al. train conv3_1 and up
    assert vgg.roi_heads.box_head.fc6.weight.shape == (4096, 512 * 7 * 7)
    # no pretrained weights: everything trains, with ordinary batch norms
    scratch = on_meta(create_model, name="fasterrcnn_resnet18_fpn")
    assert all(p.requires_grad for p in scratch.parameters()) and isinstance(
        scratch.backbone.body.bn1, torch.nn.BatchNorm2d
    )


def test_vgg16_box_head_starts_from_fc6_and_fc7(monkeypatch: pytest.MonkeyPatch) -> None:
    for init in (
        "kaiming_normal_",
        "kaiming_uniform_",
        "normal_",
        "uniform_",
    ):  # 240 M weights: seconds saved
        monkeypatch.setattr(torch.nn.init, init, lambda tensor, *args, **kwargs: tensor)
    source = on_meta(create_model, name="vgg16")
    state = {k: torch.full(v.shape, float(i)) for i, (k, v) in enumerate(source.state_dict().items())}
    monkeypatch.setattr(weights, "_ensure_local", lambda spec: None)
    monkeypatch.setattr(weights, "read_weights", lambda spec: state)
    net = create_model("fasterrcnn_vgg16", weights_backbone="imagenet", num_classes=21)
    head = net.roi_heads.box_head
    assert torch.equal(head.fc6.weight, state["classifier.0.weight"])
    assert torch.equal(head.fc7.bias, state["classifier.3.bias"])
    assert torch.equal(net.backbone.features[28].weight, state["features.28.weight"])  # conv5_3


def test_coco_weights_are_torchvisions_and_fix_the_classes(offline_backbone_weights: list[str]) -> None:
    for name, enum in [
        ("fasterrcnn_resnet50_fpn", torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
        ("fasterrcnn_mobilenet_v3_large_fpn", torchvision.models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", torchvision.models.detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1),
    ]:  # fmt: skip
        ours = weights.find_weights(name, "coco")
        assert ours.url == enum.url and Path(enum.url).stem.endswith(ours.sha256)
        assert ours.num_classes == len(enum.meta["categories"]) == 91
        assert ours.metrics["coco_val2017_box_map"] == enum.meta["_metrics"]["COCO-val2017"]["box_map"]
    net = on_meta(create_model, name="fasterrcnn_resnet50_fpn", weights="coco")
    assert net.roi_heads.box_predictor.cls_score.out_features == 91
    # torchvision's COCO weights were trained with eps=0 in the frozen batch norms, and it loads them so
    assert {m.eps for m in net.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.0}
    assert offline_backbone_weights == ["fasterrcnn_resnet50_fpn.coco"]  # no backbone weights fetched besides
    with pytest.raises(UnknownWeightsError, match="have num_classes=91, not 4"):
        create_model("fasterrcnn_resnet50_fpn", weights="coco", num_classes=4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_sise": 64}, "has no option min_sise"),
        ({"anchor_sizes": [16, 32]}, r"one entry per feature map \(5\), got 2 and 5"),
        ({"returned_layers": [3, 2]}, "returned_layers must be increasing stages"),
        ({"trainable_backbone_layers": 7}, "from 0 to 5, got 7"),
        ({"num_classes": 1}, "at least 2"),
        ({"in_channels": 1}, "give image_mean and image_std"),
        ({"weights_backbone": "imagenet21k"}, "no pretrained weights named 'imagenet21k'"),
    ],
)
def test_bad_builder_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("fasterrcnn_resnet18_fpn", **kwargs)


# ---- mAP -------------------------------------------------------------------------------------------------------


def test_map_of_hand_computed_cases() -> None:
    truth = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0]]),
            "labels": torch.tensor([1, 2]),
        }
    ]
    perfect = [{**truth[0], "scores": torch.tensor([0.9, 0.8])}]
    metric = detection_metrics()
    metric.update(perfect, truth)
    values = metric.compute()
    assert values["map"] == values["map_50"] == values["map_75"] == values["mar_100"] == 1.0

    # one object; a false alarm scored above the right box: precision 1/2 at full recall, so AP50 = 0.5
    one = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([1])}]
    ranked = [{"boxes": torch.tensor([[50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 10.0, 10.0]]),
               "labels": torch.tensor([1, 1]), "scores": torch.tensor([0.9, 0.5])}]  # fmt: skip
    metric = detection_metrics()
    metric.update(ranked, one)
    assert metric.compute()["map_50"].item() == pytest.approx(0.5)

    # a box with IoU 0.62 counts at the thresholds 0.50, 0.55 and 0.60 of ten: mAP 0.3, AP50 1, AP75 0
    loose = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 6.2]]),
            "labels": torch.tensor([1]),
            "scores": torch.tensor([0.7]),
        }
    ]
    metric = detection_metrics()
    metric.update(loose, one)
    values = metric.compute()
    assert values["map"].item() == pytest.approx(0.3) and values["map_50"] == 1.0 and values["map_75"] == 0.0


def _random_detections(seed: int, images: int = 8) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """Noisy detections of random objects: an mAP strictly between 0 and 1."""
    generator = torch.Generator().manual_seed(seed)
    preds, truth = [], []
    for _ in range(images):
        count = int(torch.randint(1, 5, (1,), generator=generator))
        corner = torch.rand(count, 2, generator=generator) * 60
        boxes = torch.cat([corner, corner + 10 + torch.rand(count, 2, generator=generator) * 30], 1)
        labels = torch.randint(1, 4, (count,), generator=generator)
        truth.append({"boxes": boxes, "labels": labels})
        noisy = boxes + torch.randn(boxes.shape, generator=generator) * 3
        flipped = torch.where(torch.rand(count, generator=generator) < 0.2, labels % 3 + 1, labels)
        preds.append({"boxes": noisy, "labels": flipped, "scores": torch.rand(count, generator=generator)})
    return preds, truth


def _rank_map(rank: int, port: int, out: str) -> None:
    # forked, as a DataLoader's workers are, and like them on one thread: torch's thread pool stayed with the parent
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    preds, truth = _random_detections(seed=3)
    metric = detection_metrics()
    metric.update(preds[rank::2], truth[rank::2])  # each process sees half of the images
    values = metric.compute()
    torch.save({k: values[k] for k in ("map", "map_50", "map_75", "mar_100")}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_map_over_two_processes_equals_one_process(tmp_path: Path) -> None:
    preds, truth = _random_detections(seed=3)
    metric = detection_metrics()
    metric.update(preds, truth)
    single = metric.compute()
    assert 0.2 < single["map_50"] < 1.0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # forked, the two start at once with what this process imported (spawned, each imports it all again, seconds);
    # a process group this process holds would be handed on to them, and then they start afresh
    method = "spawn" if dist.is_initialized() else "fork"
    mp.start_processes(_rank_map, args=(port, str(tmp_path)), nprocs=2, join=True, start_method=method)
    for rank in (0, 1):
        synced = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in synced.items():
            torch.testing.assert_close(value, single[key], msg=key)


def test_a_two_process_fit_reports_the_map_of_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fasterrcnn_shapes on two CPU processes (DDP, gloo), each testing half of the images; the test mAP it
    reports is the one a single process computes from the same checkpoint on all of them."""
    data = ["--data.init_args.num_train", "16", "--data.init_args.num_val", "8", "--data.init_args.num_test", "8",
            "--data.init_args.batch_size", "4"]  # fmt: skip
    command = [sys.executable, "-m", "zoo.fit", "--recipe", "fasterrcnn_shapes", "--trainer.devices", "2",
               "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1",
               "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
               "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path), *data]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL
    )
    # the first error of either rank (the other rank's is only that the first went away)
    errors = [line for line in done.stderr.splitlines() if "Error" in line and "Connection reset" not in line]
    assert done.returncode == 0, "\n".join(errors[:5]) + "\n" + done.stderr[-2000:]
    folder = Path(done.stdout.strip().splitlines()[-1].removeprefix("run folder: "))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["devices"] == 2 and metrics["test"]["test_mar_100"] > 0  # something found: not a 0 == 0
    one = ["--ckpt_path", str(folder / "best.ckpt"), "--trainer.devices", "1", "--trainer.strategy", "auto"]
    assert main("test", one) == 0
    out = capsys.readouterr().out
    single = json.loads(out[out.index("{") :])
    for key in ("test_map", "test_map_50", "test_mar_100"):
        assert metrics["test"][key] == pytest.approx(single[key], abs=1e-5), key


# ---- the task --------------------------------------------------------------------------------------------------


def test_task_trains_validates_and_checkpoints(tmp_path: Path) -> None:
    data = ShapesDataModule("detection", image_size=64, num_train=8, num_val=4, num_test=4, batch_size=4)
    task = DetectionTask("fasterrcnn_resnet18_fpn", num_classes=4, model_kwargs=SMALL)
    trainer = L.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(task, datamodule=data)
    logged = trainer.callback_metrics
    assert torch.isfinite(logged["train_loss_epoch"]) and logged["train_loss_epoch"] > 0
    parts = ["train_loss_classifier", "train_loss_box_reg", "train_loss_objectness", "train_loss_rpn_box_reg"]
    assert sum(logged[k] for k in parts).item() == pytest.approx(logged["train_loss_epoch"].item(), rel=1e-5)
    assert {"val_map", "val_map_50", "val_map_75", "val_mar_100"} <= set(logged)
    assert all(0 <= logged[k] <= 1 for k in ("val_map", "val_map_50"))
    (tested,) = trainer.test(task, datamodule=data, verbose=False)
    assert set(tested) == {"test_map", "test_map_50", "test_map_75", "test_mar_100"}

    task.eval()
    images, _ = next(iter(data.test_dataloader()))
    with torch.no_grad():
        found = task(images)
    assert len(found) == 4 and set(found[0]) == {"boxes", "labels", "scores"}

    path = tmp_path / "best.ckpt"
    trainer.save_checkpoint(path)
    # the classes and the builder's options come from the checkpoint
    net = create_model("fasterrcnn_resnet18_fpn", weights=str(path))
    assert net.transform.min_size == (64,) and net.roi_heads.box_predictor.cls_score.out_features == 4
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, task.net.state_dict()[key], rtol=0, atol=0)

    output = tmp_path / "detections.json"
    line = task.write_predictions([task.predict_step((images, []), 0)], output)
    written = json.loads(output.read_text())
    assert line == f"detections of 4 images written to {output}"
    assert [d["image"] for d in written] == [0, 1, 2, 3]
    assert written[0]["boxes"] == found[0]["boxes"].tolist()


def test_other_weights_get_a_predictor_for_our_classes(offline_backbone_weights: list[str]) -> None:
    task = DetectionTask("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=21, weights="coco")
    assert task.net.roi_heads.box_predictor.cls_score.out_features == 21
    assert task.net.roi_heads.box_predictor.bbox_pred.out_features == 21 * 4


class _Trainer:
    def __init__(self, datamodule: object) -> None:
        self.datamodule = datamodule


def test_bad_task_input_is_one_line() -> None:
    with pytest.raises(ZooError, match=r"unknown model 'fasterrcnn_resnet19_fpn' \(did you mean"):
        DetectionTask("fasterrcnn_resnet19_fpn")
    with pytest.raises(ZooError, match=r"model 'resnet18' is not a detector"):
        DetectionTask("resnet18")
    with pytest.raises(
        ZooError, match=r"cannot build model 'fasterrcnn_resnet18_fpn': .* has no option min_sise"
    ):
        DetectionTask(model_kwargs={"min_sise": 96})
    with pytest.raises(ZooError, match="at least 2, got 1"):
        DetectionTask(num_classes=1)
    task = DetectionTask(num_classes=3, model_kwargs=SMALL)  # forgot the background
    task._trainer = _Trainer(ShapesDataModule("detection", image_size=64))  # type: ignore[assignment]
    with pytest.raises(DataError) as error:
        task.setup("fit")
    assert str(error.value) == (
        "the task has num_classes=3 but ShapesDataModule has 4 classes; set --model.num_classes 4"
    )


# ---- the recipes, through the command line, on fabricated data ----------------------------------------------------


def test_a_class_count_that_disagrees_with_the_data_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--recipe", "fasterrcnn_voc", "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path / "runs"), *detection_recipe_args("fasterrcnn_voc", tmp_path),
            "--model.init_args.num_classes", "20"]  # fmt: skip
    assert main("fit", args) == 2
    assert capsys.readouterr().err.strip() == (
        "zoo fit: error: the task has num_classes=20 but VOCDetectionDataModule has 21 classes; "
        "set --model.num_classes 21"
    )
