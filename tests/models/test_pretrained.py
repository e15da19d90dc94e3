"""Pretrained modules you can import: shipped weights, run checkpoints, W&B references; transfer learning."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from conftest import require_fashion_mnist

from zoo.cli.export import main as export_main
from zoo.data import FashionMNISTDataModule, MNISTDataModule
from zoo.errors import ZooError
from zoo.models import create_model, list_weights, weights, weights_files
from zoo.models.weights import find_weights
from zoo.models.weights_files import SHIPPED, WeightsError
from zoo.tasks import ClassificationTask

SHIPPED_WEIGHTS = [
    "convnet.fashionmnist",
    "convnet.fashionmnist_0to4",
    "lenet5.fashionmnist",
    "mlp.fashionmnist",
]


def _spec(name: str) -> weights.Weights:
    model, tag = name.split(".")
    return find_weights(model, tag)


# --- what ships ----------------------------------------------------------------------------------------------


def test_shipped_weights_are_listed() -> None:
    assert set(SHIPPED_WEIGHTS) <= set(list_weights("*.fashionmnist*"))


@pytest.mark.parametrize("name", SHIPPED_WEIGHTS)
def test_shipped_files_match_their_full_sha256(name: str) -> None:
    spec = _spec(name)
    assert spec.file is not None and len(spec.sha256) == 64
    assert hashlib.sha256((SHIPPED / spec.file).read_bytes()).hexdigest() == spec.sha256
    assert spec.metrics["fashionmnist_test_acc"] > 0.5


@pytest.mark.real_data
@pytest.mark.parametrize("name", SHIPPED_WEIGHTS)
def test_shipped_weights_reproduce_their_test_accuracy(name: str) -> None:
    root = require_fashion_mnist()
    spec = _spec(name)
    keep = [0, 1, 2, 3, 4] if name.endswith("_0to4") else None
    data = FashionMNISTDataModule(str(root), eval_batch_size=1000, keep_classes=keep)
    data.setup()
    assert spec.preprocess is not None
    torch.testing.assert_close(data.mean, torch.tensor(spec.preprocess.mean), atol=2e-2, rtol=0)
    model = create_model(spec.model, weights=spec.tag).eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in data.test_dataloader():
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    assert total == (5000 if keep else 10000)
    assert abs(correct / total - spec.metrics["fashionmnist_test_acc"]) <= 0.003


def test_a_corrupt_shipped_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = _spec("mlp.fashionmnist")
    assert spec.file is not None
    data = bytearray((SHIPPED / spec.file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / spec.file).write_bytes(bytes(data))
    monkeypatch.setattr(weights_files, "SHIPPED", tmp_path)
    with pytest.raises(
        WeightsError, match=r"has SHA-256 .* corrupt or not the published file \(reinstall zoo\)"
    ):
        create_model("mlp", weights="fashionmnist")
    (tmp_path / spec.file).unlink()
    with pytest.raises(WeightsError, match=r"should be at .* which is missing"):
        create_model("mlp", weights="fashionmnist")


def test_shipped_weights_bring_their_options() -> None:
    spec = _spec("lenet5.fashionmnist")
    assert dict(spec.model_kwargs) == {"image_size": 28, "activation": "relu", "pool": "max"}
    model = create_model("lenet5", weights="fashionmnist")
    assert model.features[0].padding == (2, 2) and isinstance(model.features[1], torch.nn.ReLU)
    with pytest.raises(ZooError, match="need activation='relu', not 'tanh'"):
        create_model("lenet5", weights="fashionmnist", activation="tanh")


# --- checkpoints of our runs and W&B references -------------------------------------------------------------


@pytest.fixture
def checkpoint(idx_root: Path, tmp_path: Path) -> Path:
    """A checkpoint of a two-step lenet5 run on fabricated data, saved the way a zoo fit saves it."""
    task = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(task, datamodule=MNISTDataModule(str(idx_root), batch_size=32, val_size=100))
    path = tmp_path / "run" / "best.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_a_run_checkpoint_loads_as_weights(checkpoint: Path) -> None:
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    model = create_model("lenet5", weights=str(checkpoint)).eval()
    assert model.features[0].padding == (2, 2)  # image_size=28 came from the checkpoint
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[f"net.{key}"], rtol=0, atol=0)
    with pytest.raises(WeightsError, match=r"holds a 'lenet5', not a 'mlp'"):
        create_model("mlp", weights=str(checkpoint))
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("lenet5", weights=str(checkpoint.with_name("gone.ckpt")))


def test_a_checkpoint_carrying_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("this must never run",))

    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": "lenet5"}, "state_dict": {}, "x": Payload()}, path)
    with pytest.raises(WeightsError, match="is not a zoo checkpoint that can be read safely"):
        create_model("lenet5", weights=str(path))
    assert "this must never run" not in capsys.readouterr().out


def test_a_wandb_artifact_reference_loads(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[str] = []

    class Artifact:
        def download(self, root: str) -> str:
            Path(root).mkdir(parents=True, exist_ok=True)
            shutil.copy(checkpoint, Path(root) / "model.ckpt")
            return root

    class Api:
        def artifact(self, name: str, type: str) -> Artifact:
            asked.append(f"{name} ({type})")
            return Artifact()

    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("wandb.Api", Api)
    model = create_model("lenet5", weights="wandb:me/zoo/model-abc:v3")
    assert asked == ["me/zoo/model-abc:v3 (model)"]
    assert model.num_classes == 10


def test_an_unreachable_wandb_artifact_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Api:
        def artifact(self, name: str, type: str) -> Any:
            raise ValueError("could not find artifact me/zoo/nothing:v0\nmore detail")

    monkeypatch.setattr("wandb.Api", Api)
    with pytest.raises(WeightsError) as info:
        create_model("lenet5", weights="wandb:me/zoo/nothing:v0")
    assert (
        str(info.value)
        == "cannot fetch W&B artifact 'me/zoo/nothing:v0': could not find artifact me/zoo/nothing:v0"
    )


def test_export_writes_safetensors_once(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lenet5.safetensors"
    assert export_main(["--ckpt_path", str(checkpoint), "--output", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() in capsys.readouterr().out
    from safetensors.torch import load_file

    exported = load_file(out)
    original = create_model("lenet5", weights=str(checkpoint)).state_dict()
    assert exported.keys() == original.keys()
    before = out.read_bytes()
    assert export_main(["--ckpt_path", str(checkpoint), "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert (
        export_main(
            ["--ckpt_path", str(tmp_path / "nothing.ckpt"), "--output", str(tmp_path / "x.safetensors")]
        )
        == 2
    )


# --- transfer learning ----------------------------------------------------------------------------------------


def test_weights_for_other_classes_get_a_new_head() -> None:
    task = ClassificationTask("convnet", num_classes=5, weights="fashionmnist_0to4", freeze_backbone=True)
    reference = create_model("convnet", weights="fashionmnist_0to4")
    assert task.net.num_classes == 5
    for (name, ours), theirs in zip(
        task.net.features.state_dict().items(), reference.features.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)
    trainable = {n for n, p in task.net.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.1.weight", "classifier.1.bias"}


def test_freeze_then_unfreeze_at_epoch(idx_root: Path) -> None:
    task = ClassificationTask(
        "lenet5",
        num_classes=4,
        model_kwargs={"image_size": 28},
        weights="fashionmnist",
        freeze_backbone=True,
        unfreeze_at_epoch=1,
    )
    start = {k: v.clone() for k, v in task.net.state_dict().items()}
    seen: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(L.Callback):
        def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            seen[trainer.current_epoch] = {k: v.clone() for k, v in task.net.state_dict().items()}

    data = MNISTDataModule(str(idx_root), batch_size=50, val_size=100, keep_classes=[0, 1, 2, 3])
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[Snapshot()],
    )
    trainer.fit(task, datamodule=data)
    conv = "features.0.weight"
    head = "classifier.4.weight"
    torch.testing.assert_close(seen[0][conv], start[conv], rtol=0, atol=0)  # frozen in epoch 0
    assert not torch.equal(seen[0][head], start[head])  # while the new head learned
    assert not torch.equal(seen[1][conv], seen[0][conv])  # unfrozen from epoch 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unfreeze_at_epoch": 2}, "unfreeze_at_epoch needs freeze_backbone"),
        ({"freeze_backbone": True}, "freeze_backbone without weights"),
    ],
)
def test_bad_transfer_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ZooError, match=match):
        ClassificationTask("convnet", **kwargs)


def test_few_labels_per_class_and_a_class_subset(idx_root: Path) -> None:
    data = MNISTDataModule(str(idx_root), val_size=50, keep_classes=[7, 2], train_per_class=5)
    data.setup()
    labels = data.splits["train"][1]
    assert data.classes == ("7", "2") and data.num_classes == 2
    assert labels.bincount().tolist() == [5, 5]
    for split in ("val", "test"):
        assert set(data.splits[split][1].tolist()) == {0, 1}
    with pytest.raises(ZooError, match="keep_classes must be distinct labels from 0 to 9"):
        MNISTDataModule(str(idx_root), keep_classes=[3, 3])
    with pytest.raises(ZooError, match="fewer than 500 training images of class"):
        MNISTDataModule(str(idx_root), val_size=10, keep_classes=[1], train_per_class=500).setup()
