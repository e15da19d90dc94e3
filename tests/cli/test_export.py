"""``zoo export``: safetensors, ONNX and torch.export files that compute what the PyTorch network computes, never
written over an existing file; and TorchScript by tracing (scripting fails on zoo's networks, docs/models.md)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from zoo.cli.export import FORMATS, main, save_network
from zoo.data import FashionMNISTDataModule
from zoo.errors import ZooError
from zoo.models import create_model
from zoo.models.summary import default_input_size
from zoo.tasks import ClassificationTask

ATOL = 1e-4
#: name -> (builder options, (C, H, W) of its images); GoogLeNet's CIFAR stem on 16x16 keeps it to seconds
NETWORKS: dict[str, tuple[dict[str, Any], tuple[int, int, int]]] = {
    "lenet5": ({}, (1, 32, 32)),
    "resnet20": ({"num_classes": 10}, (3, 32, 32)),
    "vgg11_bn": ({"num_classes": 10, "head": "cifar"}, (3, 32, 32)),
    "googlenet": ({"num_classes": 10, "stem": "cifar"}, (3, 16, 16)),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """The network with random weights, in eval mode; batch norm gets random statistics too, since a fresh one is
    nearly the identity and an exporter that dropped it would go unseen."""
    torch.manual_seed(seed)
    net = create_model(name, **NETWORKS[name][0])
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval()


def images(shape: tuple[int, ...], batch: int = 3) -> torch.Tensor:
    """A batch of another size than the one the exporters trace (2), to show the batch is left free."""
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))


def run_exported(path: Path, fmt: str, x: torch.Tensor, fresh: nn.Module | None = None) -> torch.Tensor:
    """What the file computes, read back the way a user would: ONNX Runtime, torch.export.load, or the tensors
    loaded into a freshly built network."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    if fmt == "exported_program":
        return torch.export.load(path).module()(x)
    from safetensors.torch import load_file

    assert fresh is not None
    fresh.load_state_dict(load_file(path))
    return fresh.eval()(x)


def metadata_of(path: Path) -> dict[str, str]:
    """The string pairs a file carries, in each format's own place for them."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    if path.suffix == ".pt2":
        extra = {"zoo_metadata.json": ""}
        torch.export.load(path, extra_files=extra)
        return dict(json.loads(extra["zoo_metadata.json"]))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        return dict(file.metadata())


# --- the networks, format by format ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", list(NETWORKS))
def test_an_exported_network_computes_what_pytorch_computes(name: str, fmt: str, tmp_path: Path) -> None:
    net, shape = build(name), NETWORKS[name][1]
    out = tmp_path / f"{name}{FORMATS[fmt]}"
    info = save_network(net, out, fmt, input_size=shape, metadata={"model": name})
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    x = images(shape)
    with torch.no_grad():
        expected = net(x)
        got = run_exported(out, fmt, x, fresh=build(name, seed=1))
    assert expected.abs().max() > 100 * ATOL  # outputs big enough for the tolerance to mean something
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert metadata_of(out)["model"] == name


@pytest.mark.parametrize("name", list(NETWORKS))
def test_torchscript_by_tracing(name: str) -> None:
    net, shape = build(name), NETWORKS[name][1]
    traced = torch.jit.trace(net, images(shape, batch=2), check_trace=False)  # checked below
    x = images(shape)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), net(x), atol=ATOL, rtol=0)


class Drifts(nn.Module):
    """Computes one thing when run and another when traced or exported: an export that must be refused."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = 1.0 if torch.jit.is_tracing() or torch.compiler.is_exporting() else 0.0
        return x.flatten(1) + shift


@pytest.mark.parametrize("fmt", ["onnx", "exported_program"])
def test_an_export_that_computes_something_else_is_not_written(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"drifts{FORMATS[fmt]}"
    with pytest.raises(ZooError, match=r"differ by up to 1; nothing was written"):
        save_network(Drifts(), out, fmt, input_size=(1, 2, 2), metadata={})
    assert not out.exists()


class Appears(nn.Module):
    """Creates the output file while it is being exported, as another process could."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.compiler.is_exporting():
            self.out.write_bytes(b"theirs")
        return x.flatten(1)


@pytest.mark.parametrize("fmt", ["onnx", "exported_program"])
def test_a_file_that_appears_during_the_export_is_left_alone(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"appears{FORMATS[fmt]}"
    with pytest.raises(ZooError, match="already exists"):
        save_network(Appears(out), out, fmt, input_size=(1, 2, 2), metadata={})
    assert out.read_bytes() == b"theirs"


def test_the_default_input_size_is_zoo_summarys() -> None:
    assert default_input_size(1, {"image_size": 32}) == (1, 32, 32)
    assert default_input_size(1, {}) == (1, 28, 28)
    assert default_input_size(3, {"head": "cifar"}) == default_input_size(3, {"stem": "cifar"}) == (3, 32, 32)
    assert default_input_size(3, {}) == (3, 224, 224)


# --- the command, end to end with lenet5 ----------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A lenet5 checkpoint as zoo fit writes one (the task's hyperparameters and state dict), in a run folder
    whose config.yaml trains on Fashion-MNIST and whose metrics.json holds test metrics."""
    torch.manual_seed(0)
    task = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    run = tmp_path / "run"
    run.mkdir()
    path = run / "best.ckpt"
    torch.save({"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}, path)
    data = {"class_path": "zoo.data.FashionMNISTDataModule", "init_args": {"root": None, "batch_size": 64}}
    (run / "config.yaml").write_text(json.dumps({"data": data}))  # JSON is YAML
    (run / "metrics.json").write_text(json.dumps({"test": {"test_acc": 0.5, "test_acc/cls0": 0.1}}))
    return path


def trained(checkpoint: Path) -> nn.Module:
    return create_model("lenet5", weights=str(checkpoint)).eval()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_command_writes_each_format_once(
    fmt: str, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported" / f"lenet5{FORMATS[fmt]}"  # the suffix chooses the format
    assert main(["--ckpt_path", str(checkpoint), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})" in printed
    metadata = metadata_of(out)
    assert json.loads(metadata["categories"]) == list(FashionMNISTDataModule.classes)
    assert metadata["num_classes"] == "10" and json.loads(metadata["metrics"]) == {"test_acc": 0.5}
    x = images((1, 28, 28))
    with torch.no_grad():
        net = trained(checkpoint)
        torch.testing.assert_close(
            run_exported(out, fmt, x, fresh=create_model("lenet5", image_size=28)), net(x), atol=ATOL, rtol=0
        )
    if fmt != "safetensors":
        assert "input (batch, 1, 28, 28)" in printed and "largest difference" in printed
    if fmt == "exported_program":  # no source paths of the machine that exported it
        assert not any(node.meta.get("stack_trace") for node in torch.export.load(out).graph.nodes)

    before = out.read_bytes()
    assert main(["--ckpt_path", str(checkpoint), "--output", str(out), "--format", fmt]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_categories_come_from_the_checkpoint_then_the_run_config(checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "zoo_classes": [f"c{i}" for i in range(10)]}, checkpoint)
    assert main(["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "a.safetensors")]) == 0
    assert json.loads(metadata_of(tmp_path / "a.safetensors")["categories"])[:2] == ["c0", "c1"]

    torch.save(state, checkpoint)
    (checkpoint.parent / "config.yaml").unlink()
    assert main(["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "b.safetensors")]) == 0
    assert "categories" not in metadata_of(tmp_path / "b.safetensors")


@pytest.mark.parametrize(
    ("output", "extra", "message"),
    [
        (
            "x.onnx",
            ["--format", "safetensors"],
            "ends in .onnx, the onnx format, but --format is safetensors",
        ),
        ("x.pt2", ["--format", "onnx"], "ends in .pt2, the exported_program format, but --format is onnx"),
        ("x.bin", [], "--output must end in .safetensors, not '.bin'"),
        ("x.bin", ["--format", "exported_program"], "--output must end in .pt2, not '.bin'"),
        ("x.onnx", ["--input_size", "1", "9", "9"], "cannot take 1x9x9 images"),
        ("x.safetensors", ["--input_size", "1", "28", "28"], "--input_size is for onnx and exported_program"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(
    output: str,
    extra: list[str],
    message: str,
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / output
    assert main(["--ckpt_path", str(checkpoint), "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_onnx_without_its_packages_says_how_to_install_them(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    assert main(["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'zoo[onnx]'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.onnx").exists()
