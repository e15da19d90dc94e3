"""AlexNet and GoogLeNet: parameter counts, torchvision's weights and outputs, small-image forms, options."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from conftest import num_params, on_meta

from zoo.models import alexnet as alexnet_module
from zoo.models import googlenet as googlenet_module
from zoo.models.alexnet import alexnet
from zoo.models.googlenet import GoogLeNetOutputs, googlenet

BUILDERS = {"alexnet": alexnet, "googlenet": googlenet}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- parameter counts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("alexnet", {}, 61_100_840),  # torchvision
        ("alexnet", {"num_classes": 10, "head": "cifar"}, 2_472_266),  # bearpaw/pytorch-classification
        ("alexnet", {"num_classes": 10, "head": "cifar", "image_size": 28}, 2_472_266),
        ("alexnet", {"num_classes": 10, "in_channels": 1, "head": "cifar", "image_size": 28}, 2_456_778),
        ("googlenet", {}, 6_624_904),  # torchvision
        ("googlenet", {"aux_logits": True}, 13_004_888),  # torchvision with its auxiliary heads
        ("googlenet", {"num_classes": 10, "stem": "cifar"}, 5_490_986),
    ],
)
def test_parameter_count(name: str, kwargs: dict[str, Any], expected: int) -> None:
    assert num_params(on_meta(BUILDERS[name], **kwargs)) == expected


@pytest.mark.parametrize(
    ("name", "theirs_kwargs", "ours_kwargs"),
    [
        ("alexnet", {}, {}),
        ("googlenet", {"aux_logits": False, "init_weights": False}, {}),
        ("googlenet", {"aux_logits": True, "init_weights": False}, {"aux_logits": True}),
    ],
)
def test_layout_matches_torchvision(
    name: str, theirs_kwargs: dict[str, Any], ours_kwargs: dict[str, Any]
) -> None:
    ours = on_meta(BUILDERS[name], **ours_kwargs).state_dict()
    theirs = on_meta(getattr(torchvision.models, name), weights=None, **theirs_kwargs).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


# --- the same outputs as torchvision with its weights ------------------------------------------------


def test_alexnet_matches_torchvision_at_224() -> None:
    theirs = torchvision.models.alexnet(weights=None).eval()
    ours = on_meta(alexnet).eval()  # takes torchvision's tensors: no second 61M-parameter init
    ours.load_state_dict(alexnet_module.from_torchvision(theirs.state_dict()), assign=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
        assert ours.forward_features(x).shape == (1, 256, 6, 6)


@pytest.mark.parametrize(
    ("theirs_aux", "ours_aux", "transform_input"),
    [
        (False, False, False),
        (True, False, False),
        (True, True, True),
    ],
)
def test_googlenet_matches_torchvision(theirs_aux: bool, ours_aux: bool, transform_input: bool) -> None:
    options = {"transform_input": transform_input, "dropout": 0.0, "dropout_aux": 0.0}
    theirs = torchvision.models.googlenet(weights=None, aux_logits=theirs_aux, init_weights=True, **options)
    ours = on_meta(googlenet, aux_logits=ours_aux, **options)
    ours.load_state_dict(
        googlenet_module.from_torchvision(theirs.state_dict(), aux_logits=ours_aux), assign=True
    )
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-5, rtol=1e-5)
        if ours_aux:  # torchvision runs its auxiliary heads only in training mode (batch statistics)
            expected = theirs.train()(x)
            got = ours.train().forward_aux(x)
            torch.testing.assert_close(got.logits, expected.logits, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got.aux1, expected.aux_logits1, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got.aux2, expected.aux_logits2, atol=1e-5, rtol=1e-5)


def test_googlenet_from_torchvision_keeps_or_drops_aux_keys() -> None:
    with_aux = on_meta(
        torchvision.models.googlenet, weights=None, aux_logits=True, init_weights=False
    ).state_dict()
    dropped = googlenet_module.from_torchvision(with_aux)
    assert not any(k.startswith(("aux1.", "aux2.")) for k in dropped)
    assert len(dropped) < len(with_aux)
    assert googlenet_module.from_torchvision(with_aux, aux_logits=True).keys() == with_aux.keys()
    with pytest.raises(ValueError, match="no auxiliary-head weights"):
        googlenet_module.from_torchvision(dropped, aux_logits=True)


# --- small images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "shape", "features"),
    [
        ("alexnet", {"head": "cifar"}, (3, 32, 32), (256, 1, 1)),
        ("alexnet", {"head": "cifar", "image_size": 28, "in_channels": 1}, (1, 28, 28), (256, 1, 1)),
        ("googlenet", {"stem": "cifar"}, (3, 32, 32), (1024, 8, 8)),
        ("googlenet", {"stem": "cifar", "in_channels": 1}, (1, 28, 28), (1024, 7, 7)),
    ],
)
def test_feature_map_sizes_on_small_images(
    name: str, kwargs: dict[str, Any], shape: tuple[int, int, int], features: tuple[int, int, int]
) -> None:
    # gradients and outputs of every model at these sizes: tests/test_models.py; here only the sizes, on meta
    with torch.device("meta"):
        model = BUILDERS[name](num_classes=10, **kwargs)
        feature_map = model.forward_features(torch.empty(2, *shape))
    assert feature_map.shape == (2, *features)
    assert model.forward_head(feature_map).shape == (2, 10)


def test_alexnet_imagenet_takes_63x63_and_googlenet_cifar_stem_keeps_32x32() -> None:
    ours = on_meta(alexnet)
    assert ours(torch.zeros(1, 3, 63, 63, device="meta")).shape == (1, 1000)
    stem = on_meta(googlenet, stem="cifar")
    x = stem.conv1(torch.zeros(1, 3, 32, 32, device="meta"))
    x = stem.maxpool2(stem.conv3(stem.conv2(stem.maxpool1(x))))
    assert x.shape == (1, 192, 32, 32)


def test_googlenet_aux_heads() -> None:
    model = googlenet(num_classes=10, aux_logits=True).train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)  # forward never returns the aux logits
    outputs = model.forward_aux(x)
    assert isinstance(outputs, GoogLeNetOutputs)
    assert [t.shape for t in outputs] == [(2, 10)] * 3
    (outputs.logits + 0.3 * (outputs.aux1 + outputs.aux2)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(RuntimeError, match="aux_logits=True"):
        on_meta(googlenet).forward_aux(x.to("meta"))


# --- options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("alexnet", {"head": "coco"}, "head must be 'imagenet' or 'cifar', not 'coco'"),
        ("alexnet", {"head": "cifar", "image_size": 30}, "32x32 or 28x28 images, not 30x30"),
        ("alexnet", {"image_size": 32}, "at least 63x63, not 32x32; use head='cifar'"),
        ("googlenet", {"stem": "coco"}, "stem must be 'imagenet' or 'cifar', not 'coco'"),
        ("googlenet", {"transform_input": True, "in_channels": 1}, "needs in_channels=3, not 1"),
        (
            "alexnet",
            {"weights": "imagenet_v9"},
            "model 'alexnet' has no pretrained weights named 'imagenet_v9'",
        ),
        ("alexnet", {"weights": "imagenet", "head": "cifar"}, "need head='imagenet', not 'cifar'"),
        ("googlenet", {"weights": "imagenet", "stem": "cifar"}, "need stem='imagenet', not 'cifar'"),
    ],
)
def test_bad_options_raise(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        on_meta(BUILDERS[name], **kwargs)
