"""Style transfer: the losses by hand, the loss network, the transformer, Gatys' optimisation, zoo.stylize,
and the style_fast recipe from fit to PNG predictions. Random loss networks, tiny images, no network access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.cli import main as zoo_main
from zoo.cli.stylize import main as stylize
from zoo.data.images import ImagesDataModule
from zoo.data.readers.images import SAMPLES, read_image
from zoo.errors import DataError
from zoo.models.registry import create_model
from zoo.models.style import (
    GATYS_CONTENT_LAYERS,
    GATYS_STYLE_LAYERS,
    Losses,
    PerceptualLoss,
    VGGLossNetwork,
    content_loss,
    gram_matrix,
    loss_network,
    style_loss,
    total_variation,
)
from zoo.models.transformer_net import TransformerNet
from zoo.models.weights_files import WeightsError
from zoo.tasks.style_transfer import gatys_stylize

SIZE = 16  # the smallest side VGG's four poolings leave a map of


def make_image_folder(folder: Path, count: int, *, seed: int = 0) -> Path:
    """``count`` small random RGB PNG photos, 20x24 pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index:02d}.png")
    return folder


@pytest.fixture(autouse=True)
def _seeded_offline_one_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Seeded; no VGG weights in the cache and no downloads, whatever the machine has; one CPU thread (these
    tiny convolutions gain nothing from more, and lose seconds when the cores are busy)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "no-weights"))

    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield
    torch.set_num_threads(threads)


def assert_one_line_error(capsys: pytest.CaptureFixture[str], status: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo stylize: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---- the losses, against hand-computed values -----------------------------------------------------------------


def test_gram_matrix_by_hand() -> None:
    # one image, 2 channels of 2x2: rows of F are (1, 2, 3, 4) and (0, 1, 0, 1); C*H*W = 8
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8
    torch.testing.assert_close(gram_matrix(features), expected)
    batch = torch.cat([features, 2 * features])
    torch.testing.assert_close(gram_matrix(batch), torch.cat([expected, 4 * expected]))


def test_content_loss_by_hand() -> None:
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = torch.tensor([[[[1.0, 0.0], [3.0, 1.0]]]])
    assert content_loss(a, b).item() == pytest.approx((0 + 4 + 0 + 9) / 4)
    # a batch of outputs against one target
    assert content_loss(torch.cat([a, b]), b).item() == pytest.approx((0 + 4 + 0 + 9 + 0) / 8)


def test_style_loss_by_hand() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # Gram [[30, 6], [6, 2]] / 8
    y = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]])  # one channel: Gram [[4]] / 4 = 1
    targets = {"a": torch.zeros(1, 2, 2), "b": torch.full((1, 1, 1), 3.0)}
    layer_a = ((30 / 8) ** 2 + 2 * (6 / 8) ** 2 + (2 / 8) ** 2) / 4
    layer_b = (1 - 3) ** 2
    assert style_loss({"a": x, "b": y}, targets).item() == pytest.approx(layer_a + layer_b)


def test_total_variation_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical |3-0|, |5-1| -> mean 3.5; horizontal |1-0|, |5-3| -> mean 1.5
    assert total_variation(image).item() == pytest.approx(5.0)


# ---- the loss network and the transformer ---------------------------------------------------------------------


def test_loss_network_layers_are_torchvisions() -> None:
    vgg19 = create_model("vgg19", num_classes=1, head="cifar").eval()
    net = VGGLossNetwork(vgg19, "vgg19", style_layers=GATYS_STYLE_LAYERS, content_layers=GATYS_CONTENT_LAYERS)
    x = torch.rand(2, 3, SIZE, SIZE)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    out = net(x)
    # torchvision's vgg19.features indices: conv1_1 0, conv2_1 5, conv3_1 10, conv4_1 19, conv4_2 21, conv5_1 28
    indices = {"conv1_1": 0, "conv2_1": 5, "conv3_1": 10, "conv4_1": 19, "conv4_2": 21, "conv5_1": 28}
    with torch.no_grad():
        for name, index in indices.items():
            torch.testing.assert_close(out[name], vgg19.features[: index + 1](normalised.clone()), msg=name)
    assert len(net.body) == 29 and set(out) == {*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS}
    # frozen and in eval mode whatever happens, yet differentiable with respect to its input
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    image = x.clone().requires_grad_(True)
    net(image)["conv4_2"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0

    vgg16 = loss_network("vgg16", weights=None, allow_random=True)  # Johnson's: up to relu4_3 (index 22)
    assert list(vgg16.body.named_children())[-1][0] == "relu4_3" and len(vgg16.body) == 23
    assert vgg16.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    assert vgg16.content_layers == ("relu2_2",)


def test_loss_network_refuses_to_run_without_weights() -> None:
    with pytest.raises(WeightsError, match="has no weights"):
        loss_network("vgg19", weights=None)
    with pytest.raises(WeightsError, match=r"no ImageNet weights for the vgg19 loss network.*copy that file"):
        loss_network("vgg19")  # "imagenet": not cached, and the download fails
    with pytest.raises(ValueError, match="has no layer relu9_9"):
        loss_network("vgg16", weights=None, allow_random=True, style_layers=["relu9_9"])


def test_loss_network_reads_a_local_torchvision_file(tmp_path: Path) -> None:
    source = create_model("vgg16", num_classes=1, head="cifar")  # the same keys as torchvision's vgg16
    path = tmp_path / "vgg16.pth"
    torch.save(source.state_dict(), path)
    net = loss_network("vgg16", weights=path)
    torch.testing.assert_close(net.body.conv4_3.weight, source.features[21].weight)

    with pytest.raises(WeightsError, match="is not a torchvision vgg19 state dict"):
        loss_network("vgg19", weights=path)
    with pytest.raises(WeightsError, match="does not exist"):
        loss_network("vgg16", weights=tmp_path / "missing.pth")

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Payload()}, evil)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        loss_network("vgg16", weights=evil)
    assert not marker.exists()


def test_transformer_net() -> None:
    net = TransformerNet()
    assert sum(p.numel() for p in net.parameters()) == 1_679_235  # pytorch/examples' TransformerNet
    x = torch.rand(2, 3, 18, 22)  # not a multiple of 4: padded inside, cropped back
    y = net(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


# ---- Gatys: optimising the image -------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_the_loss(optimizer: str) -> None:
    network = loss_network("vgg19", weights=None, allow_random=True)
    content, style = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 3, 20, 20)
    loss = PerceptualLoss(network, style, content_weight=1.0, style_weight=1e6)
    seen: list[float] = []

    def record(step: int, losses: Losses) -> None:
        seen.append(float(losses.total))

    result = gatys_stylize(loss, content, steps=6, optimizer=optimizer, on_step=record)
    assert len(seen) == 6  # exactly `steps` loss evaluations, L-BFGS included
    targets = loss.content_targets(content)
    with torch.no_grad():
        before, after = loss(content, targets).total.item(), loss(result, targets).total.item()
    assert after < 0.9 * before
    assert result.shape == content.shape and result.min() >= 0 and result.max() <= 1


# ---- python -m zoo.stylize -------------------------------------------------------------------------------------


def test_stylize_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(style)
    out = tmp_path / "out" / "stylised.png"
    args = ["--style", str(style), "--output", str(out), "--steps", "3", "--size", str(SIZE),
            "--random_loss_network"]  # fmt: skip
    assert stylize(["--content", "default", *args]) == 0  # scikit-image's astronaut, 512x512
    assert Image.open(out).size == (SIZE, SIZE)
    assert f"wrote {out}" in capsys.readouterr().out

    photo = make_image_folder(tmp_path / "photos", 1) / "photo00.png"  # 20x24: shorter side to 16
    wide = tmp_path / "wide.png"
    assert stylize(["--content", str(photo), *args[:2], "--output", str(wide), *args[4:]]) == 0
    assert Image.open(wide).size == (19, SIZE)


def test_stylize_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    style = make_image_folder(tmp_path / "s", 1) / "photo00.png"
    out = tmp_path / "out.png"
    common = ["--output", str(out), "--size", str(SIZE), "--steps", "2"]

    status = stylize(["--style", str(tmp_path / "nope.jpg"), "--random_loss_network", *common])
    assert_one_line_error(capsys, status, "--style", "nope.jpg", "does not exist")
    status = stylize(["--style", str(style), *common])  # no weights cached, no network
    assert_one_line_error(capsys, status, "no ImageNet weights for the vgg19 loss network", "--loss_weights")
    status = stylize(["--style", str(style), "--loss_weights", str(tmp_path / "x.pth"), *common])
    assert_one_line_error(capsys, status, "x.pth does not exist")
    assert not out.exists()

    out.write_bytes(b"precious")
    status = stylize(["--style", str(style), "--random_loss_network", *common])
    assert_one_line_error(capsys, status, "exists", "never overwritten")
    assert out.read_bytes() == b"precious"

    status = stylize(["--style", str(style), "--output", str(tmp_path / "a.jpg"), "--random_loss_network"])
    assert_one_line_error(capsys, status, ".png")
    status = stylize(["--output", str(tmp_path / "b.png"), "--random_loss_network"])
    assert_one_line_error(capsys, status, "needs --style")
    status = stylize(["--style", str(style)])
    assert_one_line_error(capsys, status, "--output")
    status = stylize(["--style", str(style), "--output", str(tmp_path / "c.png"), "--steps", "many"])
    assert_one_line_error(capsys, status, "--steps", "many")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-weights", "out.png", "s"]  # nothing written


def test_images_datamodule(tmp_path: Path) -> None:
    samples = ImagesDataModule(size=SIZE, num_workers=0)  # no folder: scikit-image's photos
    samples.setup()
    images, names = next(iter(samples.train_dataloader()))
    assert images.shape == (3, 3, SIZE, SIZE) and images.dtype == torch.float32 and images.min() >= 0
    held_out = [name for _, name in samples.datasets["val"]]
    assert sorted([*names, *held_out]) == sorted(SAMPLES) and len(held_out) == 1
    with pytest.raises(DataError, match="does not exist"):
        ImagesDataModule(str(tmp_path / "none")).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        ImagesDataModule(str(tmp_path / "empty")).setup()
    broken = make_image_folder(tmp_path / "broken", 1) / "photo00.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot be read as an image"):
        read_image(broken)


# ---- the recipe: fit, figures, predictions ---------------------------------------------------------------------


def test_style_fast_fits_draws_and_predicts_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = make_image_folder(tmp_path / "photos", 6)  # 2 held out, 4 train: one batch an epoch
    fit = ["--recipe", "style_fast", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
           "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
           "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path / "runs"),
           "--data.init_args.root", str(photos), "--data.init_args.val_size", "2",
           "--data.init_args.size", str(SIZE), "--data.init_args.num_workers", "0",
           "--model.init_args.loss_weights", "null", "--model.init_args.allow_random", "true",
           "--model.init_args.style_size", str(SIZE)]  # fmt: skip
    assert zoo_main("fit", fit) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run folder: "))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["reference"]["metric"] == "test_loss" and metrics["test"]["test_loss"] > 0
    figures = sorted(p.name for p in (folder / "figures").glob("*.png"))
    assert "epoch000-val-stylized.png" in figures and "best-test-stylized.png" in figures
    # content images above their stylised versions: 2 tiles a row, 2 rows, 2-pixel borders
    assert Image.open(folder / "figures" / "best-test-stylized.png").size == (2 * (SIZE + 2) + 2,) * 2
    checkpoint = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
    assert all(key.startswith("net.") for key in checkpoint["state_dict"])  # no VGG in checkpoints

    # predictions need no loss network: ImageNet weights asked for here, none to be had, and it still works
    output = tmp_path / "stylised"
    predict = ["--ckpt_path", str(folder / "best.ckpt"), "--data.init_args.predict_root", str(photos),
               "--data.init_args.predict_size", str(SIZE), "--model.init_args.loss_weights", "imagenet",
               "--model.init_args.allow_random", "false", "--output", str(output)]  # fmt: skip
    assert zoo_main("predict", predict) == 0
    assert "6 stylised images written to" in capsys.readouterr().out
    written = sorted(output.glob("*.png"))
    assert [p.name for p in written] == [f"photo{i:02d}.png" for i in range(6)]
    assert Image.open(written[0]).size == (19, SIZE)
    before = [p.read_bytes() for p in written]
    assert zoo_main("predict", predict) == 2
    assert "exists" in capsys.readouterr().err
    assert [p.read_bytes() for p in sorted(output.glob("*.png"))] == before
    # one photo through the trained network with zoo.stylize
    fast = tmp_path / "fast.png"
    johnson = ["--method", "johnson", "--ckpt_path", str(folder / "best.ckpt"), "--size", str(SIZE)]
    assert stylize([*johnson, "--content", str(photos / "photo00.png"), "--output", str(fast)]) == 0
    assert Image.open(fast).size == (19, SIZE)
    assert stylize([*johnson[:2], "--output", str(tmp_path / "x.png")]) == 2
    assert "needs --ckpt_path" in capsys.readouterr().err
    # without --output: a folder beside the checkpoint
    assert zoo_main("predict", predict[:-2]) == 0
    assert len(list((folder / "best-predictions").glob("*.png"))) == 6
