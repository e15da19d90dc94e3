"""The autoencoder: the network's shapes, the task's figures and W&B images, its recipe, and ``python -m zoo.embed``.

The reconstruction figure is 8 originals over their 8 reconstructions: tiles of 96 px with 26 px of caption under
each and 2 px between them (zoo.figures.drawing), so 8 * 98 + 2 wide and 2 * 124 + 2 high.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, make_idx_dataset
from PIL import Image

from zoo.cli import main as zoo_main
from zoo.cli.embed import main as embed
from zoo.data.readers.idx import read_idx
from zoo.errors import ZooError
from zoo.models import create_model
from zoo.models.autoencoder import conv_autoencoder
from zoo.tasks import ClassificationTask
from zoo.tasks.autoencoder import AutoencoderTask

RECIPE = "autoencoder_fashionmnist"
GRID = (8 * 98 + 2, 2 * 124 + 2)
N_TEST = N_VAL = 40


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


# ---- the network ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "shape", "embedding"),
    [({}, (1, 28, 28), 64), ({"in_channels": 3, "image_size": 32, "embedding_dim": 32}, (3, 32, 32), 32)],
    ids=["28x28x1", "32x32x3"],
)
def test_shapes_and_gradients(kwargs: dict[str, Any], shape: tuple[int, int, int], embedding: int) -> None:
    torch.manual_seed(0)
    net = create_model("conv_autoencoder", **kwargs)
    x = torch.randn(2, *shape)
    z = net.encode(x)
    assert z.shape == (2, embedding)
    assert net.decode(z).shape == x.shape
    out = net(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, net.decode(net.encode(x)))
    out.square().mean().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_parameter_count_and_bad_options() -> None:
    assert sum(p.numel() for p in conv_autoencoder().parameters()) == 442_177  # the module docstring's figure
    with pytest.raises(ValueError, match="multiple of 4"):
        conv_autoencoder(image_size=30)
    with pytest.raises(ValueError, match="embedding_dim"):
        conv_autoencoder(embedding_dim=0)
    with pytest.raises(ZooError, match=r"cannot build model 'lenet5'.*embedding_dim"):
        AutoencoderTask("lenet5")
    with pytest.raises(ZooError, match="loss must be one of mse, bce"):
        AutoencoderTask(loss="l1")  # type: ignore[arg-type]


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_the_target_is_the_input_in_pixels_and_both_losses_train(loss: str) -> None:
    torch.manual_seed(0)
    task = AutoencoderTask(loss=loss)  # type: ignore[arg-type]
    task.pixel_mean.fill_(0.3)  # as setup reads them from a DataModule
    task.pixel_std.fill_(0.25)
    images = torch.randn(4, 1, 28, 28)
    target = task.pixels(images)
    torch.testing.assert_close(target, (images * 0.25 + 0.3).clamp(0, 1))
    value = task.criterion(task(images), target)
    value.backward()
    assert torch.isfinite(value) and all(p.grad is not None for p in task.parameters())
    perfect = torch.logit(target.clamp(1e-6, 1 - 1e-6))  # logits of the target itself
    assert task.criterion(perfect, target) < value


# ---- the recipe, its figures and its W&B run -----------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of a one-epoch fit of the recipe on fabricated data, through the CLI, with W&B offline."""
    tmp = tmp_path_factory.mktemp("fit")
    root = make_idx_dataset(tmp / "idx", n_train=160, n_test=N_TEST)
    args = ["--recipe", RECIPE, "--data.init_args.root", str(root), "--data.init_args.val_size", str(N_VAL),
            "--data.init_args.batch_size", "32", "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(tmp / "runs"), "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
    assert zoo_main("fit", args) == 0
    (folder,) = (tmp / "runs" / RECIPE).iterdir()
    return folder


def test_a_fit_leaves_reconstruction_figures_and_metrics(run: Path) -> None:
    figures = run / "figures"
    # epoch 0 (the last), then the CLI's evaluation of best.ckpt on the validation and test splits
    names = {
        "epoch000-val-reconstructions.png",
        "best-val-reconstructions.png",
        "best-test-reconstructions.png",
    }
    assert {path.name for path in figures.iterdir()} == names
    assert all(image_size(figures / name) == GRID for name in names)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"test_loss", "test_mse", "test_psnr"}
    assert 0 < metrics["test"]["test_mse"] < 1 and metrics["test"]["test_psnr"] > 0
    assert metrics["reference"]["metric"] == "test_mse"


def test_the_offline_wandb_run_holds_the_images(run: Path) -> None:
    (wandb_run,) = (run / "wandb").glob("offline-run-*")
    media = wandb_run / "files" / "media" / "images"
    validation = sorted(media.glob("val/reconstructions_*.png"))
    assert len(validation) == 2  # epoch 0, then the best checkpoint's validation
    assert all(image_size(file) == GRID for file in validation)
    (test,) = media.glob("test/reconstructions_*.png")
    assert image_size(test) == GRID
    (records,) = wandb_run.glob("*.wandb")
    history = records.read_bytes()
    assert b"val/reconstructions" in history and b"test/reconstructions" in history
    assert b'"images/separated"' in history  # what W&B records for an image entry


def test_zoo_test_and_predict_take_an_autoencoder_checkpoint(run: Path, tmp_path: Path) -> None:
    assert (
        zoo_main("test", ["--ckpt_path", str(run / "best.ckpt"), "--trainer.enable_progress_bar", "false"])
        == 0
    )
    output = tmp_path / "predicted.npz"
    assert zoo_main("predict", ["--ckpt_path", str(run / "best.ckpt"), "--output", str(output),
                                "--trainer.enable_progress_bar", "false"]) == 0  # fmt: skip
    with np.load(output) as saved:
        assert saved["embeddings"].shape == (N_TEST, 64)


def test_wrong_channels_are_one_line_and_exit_2(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = run / "config.yaml"
    # a checkpoint of one channel into a three-channel model: refused before any data is read
    assert zoo_main("test", ["--config", str(config), "--ckpt_path", str(run / "best.ckpt"),
                             "--model.init_args.in_channels", "3"]) == 2  # fmt: skip
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "do not fit the configured model" in last and "(1,) in the checkpoint, (3,) in the model" in last
    # a three-channel model on one-channel data, no checkpoint: refused when the data is read
    assert zoo_main("fit", ["--config", str(config), "--model.init_args.in_channels", "3", "--run_dir",
                            str(run.parent / "three"), "--trainer.fast_dev_run", "true"]) == 2  # fmt: skip
    assert "in_channels=3" in capsys.readouterr().err.strip().splitlines()[-1]


# ---- python -m zoo.embed -------------------------------------------------------------------------------------


def split_labels(run: Path, prefix: str) -> list[int]:
    """The labels of the fabricated ``train`` or ``t10k`` files the run's data came from."""
    return read_idx(run.parents[2] / "idx" / f"{prefix}-labels-idx1-ubyte.gz").tolist()


def test_embed_writes_npz_and_pt(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz, pt = tmp_path / "test.npz", tmp_path / "out" / "val.pt"
    assert embed(["--ckpt_path", str(run / "best.ckpt"), "--output", str(npz)]) == 0
    assert f"wrote {N_TEST} embeddings of size 64 (test split) to {npz}" in capsys.readouterr().out
    with np.load(npz) as saved:
        embeddings, labels, classes = saved["embeddings"], saved["labels"], saved["classes"]
    assert (
        embeddings.shape == (N_TEST, 64) and embeddings.dtype == np.float32 and np.isfinite(embeddings).all()
    )
    assert labels.tolist() == split_labels(run, "t10k")  # the test split, in order
    assert classes[0] == "T-shirt/top" and len(classes) == 10

    assert embed(["--ckpt_path", str(run / "best.ckpt"), "--output", str(pt), "--split", "val"]) == 0
    saved_pt = torch.load(pt, weights_only=True)
    assert saved_pt["embeddings"].shape == (N_VAL, 64) and saved_pt["labels"].shape == (N_VAL,)
    assert len(saved_pt["classes"]) == 10


@pytest.fixture
def classifier_ckpt(tmp_path: Path) -> Path:
    """A checkpoint of a LeNet-5 classifier, outside any run folder."""
    path = tmp_path / "lenet.ckpt"
    torch.save(
        {"state_dict": ClassificationTask("lenet5", model_kwargs={"image_size": 28}).state_dict()}, path
    )
    return path


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--ckpt_path", "{best}", "--output", "{existing}"], ["exists"]),
        (["--ckpt_path", "{best}", "--output", "{tmp}/embeddings.csv"], [".npz", ".pt"]),
        (["--ckpt_path", "{tmp}/missing.ckpt", "--output", "{tmp}/e.npz"], ["does not exist"]),
        (["--output", "{tmp}/e.npz"], ["--ckpt_path"]),
        (["--ckpt_path", "{best}", "--output", "{tmp}/e.npz", "--split", "dev"], ["--split", "invalid choice", "dev"]),
        (["--ckpt_path", "{alone}", "--output", "{tmp}/e.npz"], ["no config.yaml", "--recipe"]),
        (["--ckpt_path", "{lenet}", "--recipe", "lenet5_fashionmnist", "--data.init_args.root", "{data}",
          "--output", "{tmp}/e.npz"], ["ClassificationTask", "not an AutoencoderTask"]),
        (["--ckpt_path", "{best}", "--output", "{tmp}/e.npz", "--data.init_args.nope", "1"], ["nope"]),
        (["--ckpt_path", "{best}", "--output", "{tmp}/e.npz", "--split", "val", "--data.init_args.val_size", "0"],
         ["val split has no images"]),
    ],
    ids=["exists", "suffix", "missing-ckpt", "no-ckpt", "split", "no-config", "classifier", "key", "empty-split"],
)  # fmt: skip
def test_embed_bad_input_is_one_line_and_exit_2(
    run: Path,
    tmp_path: Path,
    classifier_ckpt: Path,
    args: list[str],
    fragments: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    existing = tmp_path / "kept.npz"
    existing.write_bytes(b"precious")
    alone = tmp_path / "alone.ckpt"
    alone.write_bytes((run / "best.ckpt").read_bytes())
    places = {"{best}": str(run / "best.ckpt"), "{existing}": str(existing), "{alone}": str(alone),
              "{lenet}": str(classifier_ckpt), "{data}": str(make_idx_dataset(tmp_path / "idx", n_train=60, n_test=20))}  # fmt: skip
    args = [places.get(a, a).replace("{tmp}", str(tmp_path)) for a in args]
    capsys.readouterr()
    assert embed(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("zoo embed: error: "), last
    for fragment in fragments:
        assert fragment in last, last
    assert existing.read_bytes() == b"precious"
    assert not (tmp_path / "e.npz").exists()


def test_embed_runs_as_a_module(run: Path, tmp_path: Path) -> None:
    existing = tmp_path / "kept.pt"
    existing.write_bytes(b"precious")
    result = subprocess.run(
        [sys.executable, "-m", "zoo.embed", "--ckpt_path", str(run / "best.ckpt"), "--output", str(existing)],
        capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"zoo embed: error: {existing} exists; choose another file or move it"
    )
    assert existing.read_bytes() == b"precious"
