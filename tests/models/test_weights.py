"""Pretrained weights: the torchvision table, the download path (over file:// URLs), hash checks, mapping."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from zoo.errors import ZooError
from zoo.models import create_model, list_weights, weights
from zoo.models.weights import UnknownWeightsError, Weights, register_weights
from zoo.models.weights_files import WeightsError

TORCHVISION = ["alexnet", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
TORCHVISION += [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def _serve(model: nn.Module, folder: Path, stem: str, payload: Any = None) -> tuple[str, str]:
    """Save a state dict (or ``payload``) as torchvision names its files; returns (file:// URL, sha256)."""
    tmp = folder / f"{stem}.tmp"
    torch.save(model.state_dict() if payload is None else payload, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"{stem}-{digest[:8]}.pth"
    tmp.rename(path)
    return path.as_uri(), digest


def _keras_weights(url: str, sha256: str, tag: str = "test") -> Weights:
    return register_weights(
        Weights(model="keras_cnn", tag=tag, url=url, sha256=sha256, num_classes=10, in_channels=1)
    )


# --- the table ---------------------------------------------------------------------------------------------


def test_list_weights() -> None:
    assert set(list_weights("*.imagenet")) == {f"{name}.imagenet" for name in TORCHVISION}
    assert list_weights("resnet50") == ["resnet50.imagenet", "resnet50.imagenet_v2"]
    assert list_weights("nothing*") == []


@pytest.mark.parametrize("name", TORCHVISION)
def test_table_matches_torchvision(name: str) -> None:
    ours = weights.find_weights(name, "imagenet")
    theirs = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    assert ours.url == theirs.url
    assert len(ours.sha256) >= 8 and Path(theirs.url).stem.endswith(f"-{ours.sha256}")
    assert ours.metrics == {
        "imagenet_top1": theirs.meta["_metrics"]["ImageNet-1K"]["acc@1"],
        "imagenet_top5": theirs.meta["_metrics"]["ImageNet-1K"]["acc@5"],
    }
    assert ours.preprocess is not None
    assert (ours.preprocess.crop, ours.preprocess.resize) == (
        theirs.transforms().crop_size[0],
        theirs.transforms().resize_size[0],
    )


def test_resnet_v2_weights_match_torchvision() -> None:
    for name in ("resnet50", "resnet101", "resnet152"):
        ours = weights.find_weights(name, "imagenet_v2")
        assert ours.preprocess is not None
        theirs = torchvision.models.get_model_weights(name).IMAGENET1K_V2
        assert ours.url == theirs.url and ours.preprocess.resize == 232


# --- torchvision's state dicts map into our modules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("alexnet", {}),
        ("vgg16", {}),
        ("vgg16_bn", {}),
        ("googlenet", {"aux_logits": False, "init_weights": True}),
        ("resnet18", {}),
        ("resnet50", {}),
    ],
)
def test_torchvision_state_dict_maps_to_equal_outputs(name: str, kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    spec = weights.find_weights(name, "imagenet")
    with torch.device("meta"):  # no second initialisation: the tensors come from torchvision's model
        ours = create_model(name, **spec.model_kwargs)
    state = theirs.state_dict()
    ours.load_state_dict(spec.convert(state) if spec.convert else state, assign=True)
    ours.eval()
    if (
        "transform_input" in spec.model_kwargs
    ):  # the ImageNet GoogLeNet re-normalises its input, as torchvision's
        theirs.transform_input = spec.model_kwargs["transform_input"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


# --- the download path, over file:// URLs ------------------------------------------------------------------


def test_download_check_cache_and_load(registry: Path, tmp_path: Path) -> None:
    source = create_model("keras_cnn").eval()
    url, digest = _serve(source, registry, "keras_cnn")
    _keras_weights(url, digest[:8])
    loaded = create_model("keras_cnn", weights="test").eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)
    cached = tmp_path / "cache" / Path(url).name
    assert cached.is_file() and not list(cached.parent.glob("*.partial"))

    for served in registry.iterdir():  # the network is gone: the cached, re-checked copy is used
        served.unlink()
    torch.testing.assert_close(create_model("keras_cnn", weights="test").eval()(x), source(x), rtol=0, atol=0)


def test_full_sha256_is_checked_too(registry: Path) -> None:
    source = create_model("keras_cnn").eval()
    url, digest = _serve(source, registry, "keras_cnn")
    # the file name's 8 digits and 63 of the 64 match: only a check of the whole hash refuses the file
    wrong = digest[:-1] + ("1" if digest[-1] == "0" else "0")
    _keras_weights(url, wrong)
    with pytest.raises(WeightsError, match=rf"has SHA-256 {digest}\.\.\., expected {wrong}\.\.\."):
        create_model("keras_cnn", weights="test")
    _keras_weights(url, digest, tag="full")
    x = torch.randn(3, 1, 28, 28)  # the true hash, full length, loads
    torch.testing.assert_close(create_model("keras_cnn", weights="full").eval()(x), source(x), rtol=0, atol=0)


def test_wrong_hash_is_refused_and_discarded(registry: Path, tmp_path: Path) -> None:
    url, digest = _serve(create_model("keras_cnn"), registry, "keras_cnn")
    _keras_weights(url, "0" * 8 if not digest.startswith("0" * 8) else "1" * 8)
    with pytest.raises(WeightsError, match=r"has SHA-256 .* expected .*the download was discarded"):
        create_model("keras_cnn", weights="test")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_corrupted_cache_is_refused(registry: Path, tmp_path: Path) -> None:
    url, digest = _serve(create_model("keras_cnn"), registry, "keras_cnn")
    _keras_weights(url, digest[:8])
    create_model("keras_cnn", weights="test")
    cached = tmp_path / "cache" / Path(url).name
    data = bytearray(cached.read_bytes())
    data[-100] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(
        WeightsError, match=r"corrupt or not the published file \(delete it to download it again\)"
    ):
        create_model("keras_cnn", weights="test")


def test_no_network_says_where_to_put_the_file(registry: Path, tmp_path: Path) -> None:
    _keras_weights((registry / "keras_cnn-12345678.pth").as_uri(), "12345678")
    with pytest.raises(WeightsError) as info:
        create_model("keras_cnn", weights="test")
    message = str(info.value)
    assert "cannot download weights 'keras_cnn.test'" in message
    assert f"copy that file to {tmp_path / 'cache' / 'keras_cnn-12345678.pth'}" in message
    assert "\n" not in message and isinstance(info.value, ZooError)


class _Payload:
    """Not a tensor: ``torch.load(weights_only=True)`` must refuse to build it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"features.0.weight": _Payload()}, "cannot be read safely"),
        ([torch.zeros(1)], "is not a state dict of tensors"),
        ({"features.0.weight": torch.zeros(1)}, "do not fit the network"),
    ],
)
def test_bad_files_are_refused(
    registry: Path, payload: Any, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, digest = _serve(nn.Identity(), registry, "keras_cnn", payload=payload)
    _keras_weights(url, digest)
    with pytest.raises(WeightsError, match=match):
        create_model("keras_cnn", weights="test")
    assert "this must never run" not in capsys.readouterr().out


# --- asking for weights --------------------------------------------------------------------------------------


def test_unknown_tag_lists_the_available_ones() -> None:
    with pytest.raises(UnknownWeightsError) as info:
        create_model("resnet50", weights="imagenet_v3")
    assert str(info.value) == (
        "model 'resnet50' has no pretrained weights named 'imagenet_v3' (available: imagenet, imagenet_v2)"
    )
    with pytest.raises(
        UnknownWeightsError,
        match=r"model 'lenet5' has no pretrained weights named 'x' \(available: fashionmnist\)",
    ):
        create_model("lenet5", weights="x")


def test_weights_fix_their_options_and_the_classes_of_what_cannot_replace_its_head() -> None:
    # classifiers fit other classes and channels (tests/models/test_adapt.py); a segmenter's head is not replaced
    with pytest.raises(
        UnknownWeightsError, match=r"weights 'fcn_resnet50.coco_voc' have num_classes=21, not 10"
    ):
        create_model("fcn_resnet50", num_classes=10, weights="coco_voc")
    with pytest.raises(UnknownWeightsError, match=r"have in_channels=3, not 1"):
        create_model("fcn_resnet50", in_channels=1, weights="coco_voc")
    with pytest.raises(UnknownWeightsError, match=r"need head='imagenet', not 'cifar'"):
        create_model("vgg16", weights="imagenet", head="cifar")


def test_registering_twice_or_without_a_source_raises(registry: Path) -> None:
    _keras_weights("file:///x/keras_cnn-00000000.pth", "00000000")
    with pytest.raises(ValueError, match="already registered"):
        _keras_weights("file:///x/keras_cnn-00000000.pth", "00000000")
    with pytest.raises(ValueError, match="exactly one of url and file"):
        register_weights(Weights(model="keras_cnn", tag="none", sha256="0", num_classes=10))
