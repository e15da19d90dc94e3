"""The model registry and every registered network: shapes, gradients, parameter counts."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from conftest import num_params, on_meta
from torch import nn

from zoo.errors import ZooError
from zoo.models import create_model, list_models, list_weights, register_model, registry
from zoo.models.registry import UnknownModelError
from zoo.models.vgg import vgg11, vgg16

VGGS = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

# Every registered model's documented inputs: name pattern -> [(builder kwargs, (C, H, W))].
INPUTS: dict[str, list[tuple[dict[str, Any], tuple[int, int, int]]]] = {
    "mlp": [({}, (1, 28, 28))],
    "convnet": [({}, (1, 28, 28))],
    "lenet5": [({"image_size": 28}, (1, 28, 28)), ({}, (1, 32, 32))],
    "keras_cnn": [({}, (1, 28, 28))],
    "fastnet": [({}, (1, 28, 28)), ({"in_channels": 3, "widths": [16, 32, 64], "depth": 2}, (3, 32, 32))],
    "conv_autoencoder": [({}, (1, 28, 28)), ({"in_channels": 3, "image_size": 32}, (3, 32, 32))],
    # the ImageNet architectures at 32x32 and 28x28, each in its documented small-image form
    "vgg*": [
        ({"num_classes": 10, "head": "cifar"}, (3, 32, 32)),
        ({"num_classes": 10, "in_channels": 1, "head": "cifar", "image_size": 28}, (1, 28, 28)),
    ],
    "alexnet": [
        ({"num_classes": 10, "head": "cifar"}, (3, 32, 32)),
        ({"num_classes": 10, "in_channels": 1, "head": "cifar", "image_size": 28}, (1, 28, 28)),
    ],
    "googlenet": [
        ({"num_classes": 10, "stem": "cifar"}, (3, 32, 32)),
        ({"num_classes": 10, "in_channels": 1, "stem": "cifar"}, (1, 28, 28)),
    ],
    **{
        name: [
            ({"num_classes": 10, "stem": "cifar"}, (3, 32, 32)),
            ({"num_classes": 10, "in_channels": 1, "stem": "cifar"}, (1, 28, 28)),
        ]
        for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    },
    "resnet18_cifar": [({}, (3, 32, 32)), ({"in_channels": 1}, (1, 28, 28))],
    **{
        f"{kind}{depth}": [({}, (3, 32, 32)), ({"in_channels": 1}, (1, 28, 28))]
        for kind in ("resnet", "plain")
        for depth in (20, 32, 44, 56, 110)
    },
    # segmentation networks take any size: odd sides, not multiples of their stride
    "fcn*": [({"num_classes": 3}, (3, 37, 45))],
}
BATCH = 2
#: networks whose output is an image shaped like their input (pixel logits), not class logits
IMAGE_OUTPUTS = {"conv_autoencoder"}
#: detectors take lists of images and give losses or detections: tests/tasks/test_detection.py covers them
DETECTORS = [
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet18_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_vgg16",
]
CLASSIFIERS_AND_SEGMENTERS = [name for name in list_models() if name not in DETECTORS]
#: networks whose output is per-pixel class logits (B, num_classes, H, W), with no single feature map
SEGMENTATION_OUTPUTS = set(list_models("fcn*"))


def _output_shape(name: str, x: torch.Tensor, num_classes: int) -> tuple[int, ...]:
    if name in IMAGE_OUTPUTS:
        return tuple(x.shape)
    if name in SEGMENTATION_OUTPUTS:
        return (x.shape[0], num_classes, *x.shape[2:])
    return (x.shape[0], num_classes)


def _cases(name: str) -> list[tuple[dict[str, Any], tuple[int, int, int]]]:
    cases = [case for pattern, cs in INPUTS.items() if fnmatch.fnmatch(name, pattern) for case in cs]
    if not cases:
        pytest.fail(f"no documented input size for model '{name}': add it to INPUTS")
    return cases


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- registry --------------------------------------------------------------------------------------


def test_list_models() -> None:
    resnets = [f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110)] + ["resnet18_cifar"]
    plains = [f"plain{d}" for d in (20, 32, 44, 56, 110)]
    others = ["alexnet", "conv_autoencoder", "convnet", "fastnet", "googlenet", "keras_cnn", "lenet5", "mlp"]
    fcns = ["fcn16s_vgg16", "fcn32s_vgg16", "fcn8s_resnet18", "fcn8s_resnet50", "fcn8s_vgg16", "fcn_resnet50"]
    assert list_models() == sorted([*others, *VGGS, *resnets, *plains, *fcns, *DETECTORS])
    assert list_models("vgg*") == VGGS
    assert list_models("*_bn") == [name for name in VGGS if name.endswith("_bn")]
    assert list_models("resnet*") == sorted(resnets)
    assert list_models("inception*") == []


def test_duplicate_registration_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def vgg16(**kwargs: Any) -> nn.Module:
        return nn.Identity()

    def throwaway_net(**kwargs: Any) -> nn.Module:
        return nn.Identity()

    with monkeypatch.context() as patch:
        patch.setattr(registry, "_MODELS", dict(registry._MODELS))  # restored on leaving the block
        with pytest.raises(ValueError, match="model 'vgg16' is already registered"):
            register_model(vgg16)
        assert register_model(throwaway_net) is throwaway_net
        assert "throwaway_net" in list_models()
        with pytest.raises(ValueError, match="already registered"):
            register_model(throwaway_net)
    assert "throwaway_net" not in list_models()  # the registry the other tests see was left clean


def test_unknown_model_names_close_matches() -> None:
    with pytest.raises(UnknownModelError) as info:
        create_model("lenet")
    assert str(info.value) == (
        "unknown model 'lenet' (did you mean: lenet5, alexnet, googlenet?); see zoo.models.list_models()"
    )
    assert isinstance(info.value, ValueError) and isinstance(info.value, ZooError)
    with pytest.raises(UnknownModelError, match=r"did you mean: vgg16_bn"):
        create_model("vgg16bn")
    with pytest.raises(UnknownModelError) as info:
        create_model("transformer")
    assert str(info.value) == "unknown model 'transformer'; see zoo.models.list_models()"


@pytest.mark.parametrize("name", list_models())
def test_unknown_weights_raise_clear_error(name: str) -> None:
    available = ", ".join(w.split(".")[1] for w in list_weights(name)) or "none"
    message = f"model '{name}' has no pretrained weights named 'unknown' (available: {available})"
    with pytest.raises(ValueError) as info:
        create_model(name, weights="unknown")
    assert str(info.value) == message
    assert isinstance(info.value, ZooError)


def test_builders_reject_weights_when_called_directly() -> None:
    with pytest.raises(
        ValueError, match=r"model 'vgg16' has no pretrained weights named 'x' \(available: imagenet\)"
    ):
        vgg16(weights="x")


def test_create_model_keeps_builder_defaults() -> None:
    assert create_model("lenet5")(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    assert create_model("mlp").classifier.out_features == 10
    cifar = create_model("vgg11", head="cifar")
    assert cifar.classifier.out_features == 1000
    assert cifar.features[0].in_channels == 3
    assert create_model("lenet5", num_classes=7, in_channels=3).features[0].in_channels == 3


# --- every registered model -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFIERS_AND_SEGMENTERS)
def test_forward_backward(name: str) -> None:
    for kwargs, (c, h, w) in _cases(name):
        model = create_model(name, **kwargs)
        num_classes = kwargs.get("num_classes", 10)
        x = torch.randn(BATCH, c, h, w)
        out = model(x)
        assert out.shape == _output_shape(name, x, num_classes)
        out.sum().backward()
        for pname, p in model.named_parameters():
            if not p.requires_grad:  # an FCN's final upsampling stays bilinear (Long et al.)
                continue
            assert p.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"

        if name in SEGMENTATION_OUTPUTS:  # skips from several stages: no single feature map, no separate head
            continue
        model.eval()
        with torch.no_grad():
            features = model.forward_features(x)
            assert features.shape[:2] == (BATCH, model.num_features)
            torch.testing.assert_close(model.forward_head(features), model(x))


@pytest.mark.parametrize("name", CLASSIFIERS_AND_SEGMENTERS)
def test_in_channels_one(name: str) -> None:
    kwargs, (_, h, w) = _cases(name)[0]
    model = create_model(name, **{**kwargs, "in_channels": 1})
    x = torch.randn(BATCH, 1, h, w)
    with torch.no_grad():  # the shape is checked here, the gradients in test_forward_backward
        assert model(x).shape == _output_shape(name, x, kwargs.get("num_classes", 10))


# --- parameter counts against the published figures --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("mlp", {}, 407_050),  # Chollet (2021) ch. 2
        ("convnet", {}, 104_202),  # Chollet (2021) listing 8.1
        ("lenet5", {}, 61_706),
        ("lenet5", {"image_size": 28}, 61_706),
        ("lenet5", {"activation": "relu", "pool": "max"}, 61_706),
        ("vgg16", {}, 138_357_544),  # torchvision
        ("vgg16_bn", {}, 138_365_992),  # torchvision
        ("vgg16_bn", {"num_classes": 10, "head": "cifar"}, 14_728_266),  # kuangliu/pytorch-cifar VGG16
        ("vgg16_bn", {"num_classes": 10, "head": "cifar", "image_size": 28}, 14_728_266),
        ("keras_cnn", {}, 61_482),  # Keras tutorial CNN
        ("alexnet", {}, 61_100_840),  # torchvision
        ("googlenet", {}, 6_624_904),  # torchvision, without the auxiliary heads
        ("resnet18", {}, 11_689_512),  # torchvision
        ("resnet50", {}, 25_557_032),  # torchvision
    ],
)
def test_parameter_count(name: str, kwargs: dict[str, Any], expected: int) -> None:
    assert num_params(on_meta(create_model, name=name, **kwargs)) == expected


@pytest.mark.parametrize("name", VGGS)
def test_vgg_imagenet_matches_torchvision_layout(name: str) -> None:
    ours = on_meta(create_model, name=name).state_dict()
    theirs = on_meta(getattr(torchvision.models, name), weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_vgg11_imagenet_head_at_224_matches_torchvision() -> None:
    theirs = torchvision.models.vgg11(weights=None).eval()
    ours = on_meta(vgg11).eval()  # takes torchvision's tensors: no second 133M-parameter init
    ours.load_state_dict(theirs.state_dict(), assign=True)
    x = torch.randn(1, 3, 224, 224)
    out = ours(x)
    assert out.shape == (1, 1000)
    with torch.no_grad():
        torch.testing.assert_close(out, theirs(x))
    out.sum().backward()
    assert all(p.grad is not None for p in ours.parameters())


# --- options and bad input ---------------------------------------------------------------------------


def test_lenet5_28_and_32_have_the_same_feature_sizes() -> None:
    f28 = create_model("lenet5", image_size=28).forward_features(torch.zeros(1, 1, 28, 28))
    f32 = create_model("lenet5").forward_features(torch.zeros(1, 1, 32, 32))
    assert f28.shape == f32.shape == (1, 16, 5, 5)


def test_lenet5_options() -> None:
    model = create_model("lenet5", activation="relu", pool="max")
    assert isinstance(model.features[1], nn.ReLU) and isinstance(model.features[2], nn.MaxPool2d)
    default = create_model("lenet5")
    assert isinstance(default.features[1], nn.Tanh) and isinstance(default.features[2], nn.AvgPool2d)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("lenet5", {"image_size": 30}, "32x32 or 28x28"),
        ("lenet5", {"activation": "gelu"}, "activation must be one of"),
        ("lenet5", {"pool": "lp"}, "pool must be one of"),
        ("convnet", {"image_size": 8}, "too small"),
        ("vgg11", {"head": "coco"}, "head must be 'imagenet' or 'cifar'"),
        ("vgg11", {"head": "cifar", "image_size": 30}, "32x32 or 28x28"),
    ],
)
def test_bad_options_raise(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model(name, **kwargs)


def test_mlp_and_convnet_size_from_image_size() -> None:
    assert create_model("mlp", image_size=32, hidden=64)(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert create_model("convnet", in_channels=3, image_size=32)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_models_never_import_lightning() -> None:
    code = "import sys, zoo.models; sys.exit(bool({'lightning', 'pytorch_lightning'} & set(sys.modules)))"
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


@pytest.mark.parametrize(("depth", "millions"), [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_cifar_resnets_match_he_et_al_table_6(depth: int, millions: float) -> None:
    for kind in ("resnet", "plain"):
        count = num_params(create_model(f"{kind}{depth}"))
        assert round(count / 1e6, 2 if millions < 1 else 1) == millions, (kind, depth, count)


def test_vgg_cifar_head_at_28_has_the_maps_of_32() -> None:
    f28 = create_model("vgg11", head="cifar", image_size=28, in_channels=1).forward_features(
        torch.zeros(1, 1, 28, 28)
    )
    f32 = create_model("vgg11", head="cifar").forward_features(torch.zeros(1, 3, 32, 32))
    assert f28.shape == f32.shape == (1, 512, 1, 1)
