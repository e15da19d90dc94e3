"""Files written by ``zoo export`` load back by path: model and options from the header, hashes checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.cli.export import export
from zoo.data import MNISTDataModule
from zoo.errors import ZooError
from zoo.models import create_model, get_weights
from zoo.models.registry import UnknownModelError
from zoo.models.weights_files import WeightsError
from zoo.tasks import ClassificationTask

OPTIONS = {"image_size": 28, "activation": "relu", "pool": "max"}
CLOTHES = ["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def _export(path: Path, net: torch.nn.Module, **metadata: Any) -> Path:
    """Write ``net`` as ``zoo export`` does: its tensors, and its model, classes and options in the header."""
    header = {
        "model": "lenet5",
        "num_classes": "10",
        "in_channels": "1",
        "model_kwargs": json.dumps(OPTIONS),
        "metrics": json.dumps({"test_acc": 0.9}),
        "source": "runs/lenet5/best.ckpt",
        "categories": json.dumps(CLOTHES),
    }
    header.update({k: v for k, v in metadata.items() if v is not None})
    for key in [k for k, v in metadata.items() if v is None]:
        del header[key]
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=header)
    return path


@pytest.fixture
def source() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("lenet5", **OPTIONS).eval()


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_an_exported_file_loads_with_or_without_the_model_name(
    tmp_path: Path, source: torch.nn.Module
) -> None:
    path = _export(tmp_path / "lenet5.safetensors", source)
    for net in (create_model(weights=str(path)), create_model("lenet5", weights=str(path))):
        _same_outputs(net, source)
        record = net.pretrained_cfg
        assert (record.model, record.num_classes, record.in_channels) == ("lenet5", 10, 1)
        assert record.categories == tuple(CLOTHES) and record.metrics == {"test_acc": 0.9}
        assert dict(record.model_kwargs) == OPTIONS and record.source == "runs/lenet5/best.ckpt"
    assert net.features[0].padding == (2, 2)  # image_size=28 came from the header
    assert get_weights(str(path)) == net.pretrained_cfg
    other = create_model(weights=str(path), num_classes=3)  # other classes: a fresh head, as for a tag
    assert other.num_classes == 3 and other.pretrained_cfg.categories is None


def test_categories_are_optional_and_checked(tmp_path: Path, source: torch.nn.Module) -> None:
    bare = _export(tmp_path / "bare.safetensors", source, categories=None, metrics=None, model_kwargs=None)
    net = create_model(weights=str(bare))
    assert net.features[0].padding == (0, 0)  # no options: the builder's defaults
    record = net.pretrained_cfg
    assert record.categories is None and record.metrics == {} and dict(record.model_kwargs) == {}
    for bad in (json.dumps(CLOTHES[:3]), json.dumps({"a": 1}), "[not json"):
        path = _export(tmp_path / f"bad{len(bad)}.safetensors", source, categories=bad)
        with pytest.raises(WeightsError, match=r"has malformed zoo metadata"):
            create_model(weights=str(path))


def test_preprocessing_in_the_header_gives_transforms(tmp_path: Path, source: torch.nn.Module) -> None:
    statistics = json.dumps({"resize": 28, "crop": 28, "mean": [0.2], "std": [0.3]})
    path = _export(tmp_path / "lenet5.safetensors", source, preprocess=statistics)
    record = get_weights(str(path))
    x = record.transforms()(Image.new("RGB", (56, 70), (255, 255, 255)))
    torch.testing.assert_close(x, torch.full((1, 28, 28), (1 - 0.2) / 0.3))
    bare = get_weights(str(_export(tmp_path / "bare.safetensors", source)))
    with pytest.raises(WeightsError, match=r"do not say how images were prepared for them"):
        bare.transforms()
    broken = _export(tmp_path / "broken.safetensors", source, preprocess=json.dumps({"mean": [0.2]}))
    with pytest.raises(WeightsError, match=r"has malformed zoo metadata"):
        get_weights(str(broken))


def test_a_file_for_another_model_is_refused_in_one_line(tmp_path: Path, source: torch.nn.Module) -> None:
    path = _export(tmp_path / "lenet5.safetensors", source)
    with pytest.raises(WeightsError) as info:
        create_model("convnet", weights=str(path))
    assert str(info.value) == f"weights file {path} holds a 'lenet5', not a 'convnet'"
    assert isinstance(info.value, ZooError)


def test_a_safetensors_file_without_zoo_metadata_is_refused(tmp_path: Path, source: torch.nn.Module) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(dict(source.state_dict()), str(path))
    for call in (lambda: create_model(weights=str(path)), lambda: create_model("lenet5", weights=str(path))):
        with pytest.raises(WeightsError) as info:
            call()
        assert str(info.value).startswith(
            f"{path} has no zoo metadata (model, num_classes, in_channels missing)"
        )
        assert "\n" not in str(info.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError, match=r"is not a safetensors file that can be read"):
        create_model(weights=str(junk))
    with pytest.raises(WeightsError, match=r"does not exist"):
        create_model(weights=str(tmp_path / "gone.safetensors"))


def test_a_hash_given_beside_or_after_the_file_is_checked(tmp_path: Path, source: torch.nn.Module) -> None:
    path = _export(tmp_path / "lenet5.safetensors", source)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    wrong = digest[:-1] + ("1" if digest[-1] == "0" else "0")

    _same_outputs(create_model(weights=f"{path}#sha256={digest}"), source)
    with pytest.raises(WeightsError, match=rf"has SHA-256 {digest}\.\.\., expected {wrong}\.\.\."):
        create_model(weights=f"{path}#sha256={wrong}")

    side = tmp_path / "lenet5.safetensors.sha256"
    side.write_text(f"{digest}  lenet5.safetensors\n")  # sha256sum's output
    _same_outputs(create_model("lenet5", weights=str(path)), source)
    side.write_text(f"{wrong}  lenet5.safetensors\n")
    with pytest.raises(WeightsError, match=r"corrupt or not the published file \(get the file again\)"):
        create_model("lenet5", weights=str(path))
    with pytest.raises(WeightsError, match=r"the hashes given for .* disagree"):
        create_model("lenet5", weights=f"{path}#sha256={digest}")
    side.write_text("not-a-hash\n")
    with pytest.raises(WeightsError, match=r"lenet5.safetensors.sha256 is not a SHA-256"):
        create_model("lenet5", weights=str(path))

    side.write_text(digest)  # a bare digest; the file then changes after it was hashed
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"has SHA-256 .* expected"):
        create_model(weights=str(path))


def test_create_model_needs_a_name_or_weights_that_name_one(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"create_model needs a model name"):
        create_model()
    with pytest.raises(UnknownModelError, match=r"needs a model name for weights 'fashionmnist'"):
        create_model(weights="fashionmnist")
    net = create_model(weights="lenet5.fashionmnist")  # a MODEL.TAG name names its model
    assert net.pretrained_cfg == get_weights("lenet5.fashionmnist")


def test_a_file_written_by_zoo_export_round_trips(idx_root: Path, tmp_path: Path) -> None:
    task = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(task, datamodule=MNISTDataModule(str(idx_root), batch_size=32, val_size=100))
    checkpoint = tmp_path / "run" / "best.ckpt"
    trainer.save_checkpoint(checkpoint)
    out = tmp_path / "lenet5.safetensors"
    export(checkpoint, out)
    with safe_open(str(out), framework="pt") as f:
        header = f.metadata()

    net = create_model(weights=str(out))
    _same_outputs(net, task.net)
    assert net.features[0].padding == (2, 2)
    expected = tuple(json.loads(header["categories"])) if "categories" in header else None
    assert net.pretrained_cfg.categories == expected
