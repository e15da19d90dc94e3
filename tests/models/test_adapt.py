"""Weights for other classes (a fresh head) and other input channels (an adapted first convolution)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from zoo.errors import ZooError
from zoo.models import create_model, get_weights
from zoo.models.adapt import adapt_input_conv
from zoo.models.weights import UnknownWeightsError, Weights, register_weights
from zoo.models.weights_files import WeightsError

# --- adapt_input_conv: timm's rule ------------------------------------------------------------------------------


def test_adapt_input_conv_follows_timms_rule() -> None:
    torch.manual_seed(0)
    rgb = torch.randn(8, 3, 5, 5)
    torch.testing.assert_close(adapt_input_conv(rgb, 1), rgb.sum(1, keepdim=True))  # 1 from 3: summed
    torch.testing.assert_close(adapt_input_conv(rgb, 3), rgb)
    four = adapt_input_conv(rgb, 4)  # timm: RGBR, times 3/4
    torch.testing.assert_close(four, torch.cat([rgb, rgb[:, :1]], 1) * 0.75)
    torch.testing.assert_close(adapt_input_conv(rgb, 6), torch.cat([rgb, rgb], 1) * 0.5)
    grey = torch.randn(6, 1, 5, 5)
    torch.testing.assert_close(
        adapt_input_conv(grey, 3), grey.repeat(1, 3, 1, 1) / 3
    )  # 3 from 1: repeated, /3
    assert adapt_input_conv(rgb.half(), 1).dtype == torch.float16


def test_adapted_kernels_answer_a_grey_image_as_before() -> None:
    """Summing (to 1) or repeating and scaling (from 1) keeps the response to images whose channels are equal."""
    torch.manual_seed(0)
    rgb, grey = torch.randn(8, 3, 5, 5), torch.randn(2, 1, 12, 12)
    one = torch.nn.functional.conv2d(grey, adapt_input_conv(rgb, 1))
    torch.testing.assert_close(one, torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), rgb))
    kernel = torch.randn(8, 1, 5, 5)
    three = torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), adapt_input_conv(kernel, 3))
    torch.testing.assert_close(three, torch.nn.functional.conv2d(grey, kernel))


# --- other classes: a fresh head -------------------------------------------------------------------------------


def test_other_classes_load_the_weights_and_get_a_fresh_head() -> None:
    reference = create_model("lenet5", weights="fashionmnist")
    torch.manual_seed(0)
    net = create_model("lenet5", weights="fashionmnist", num_classes=4)
    assert net.num_classes == 4 and net.classifier[-1].weight.shape == (4, 84)
    ours, theirs = net.state_dict(), reference.state_dict()
    for key in theirs:
        if not key.startswith("classifier.4."):
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    torch.manual_seed(0)  # the head is the network's own fresh layer, as reset_classifier would give
    fresh = create_model("lenet5", num_classes=4, image_size=28, activation="relu", pool="max")
    torch.testing.assert_close(ours["classifier.4.weight"], fresh.state_dict()["classifier.4.weight"])

    record = net.pretrained_cfg
    assert record.categories is None and record.metrics == {} and record.num_classes == 4
    assert record.adapted == ("head replaced: 10 → 4 classes, untrained",)
    assert get_weights("lenet5.fashionmnist").categories is not None  # the registered record is untouched
    assert net(record.transforms()(Image.new("RGB", (50, 40)))[None]).shape == (1, 4)


def test_reset_classifier_says_so_in_the_record() -> None:
    """What a task does to train pretrained features on other classes leaves no stale categories behind."""
    net = create_model("convnet", weights="fashionmnist")
    net.reset_classifier(3)
    assert net.pretrained_cfg.categories is None and net.pretrained_cfg.metrics == {}
    assert net.pretrained_cfg.adapted == ("head replaced: 10 → 3 classes, untrained",)
    plain = create_model("convnet")
    plain.reset_classifier(3)
    assert plain.pretrained_cfg is None


def test_other_classes_through_a_builder_with_auxiliary_heads(registry: Path) -> None:
    """GoogLeNet's auxiliary classifiers predict the classes too: they are kept fresh like the main head."""
    source = create_model("googlenet", num_classes=7, in_channels=3, stem="cifar", aux_logits=True)
    path = registry / "googlenet-cifar.pth"
    torch.save(source.state_dict(), path)
    register_weights(
        Weights(
            model="googlenet",
            tag="test",
            url=path.as_uri(),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            num_classes=7,
            model_kwargs={"stem": "cifar"},
        )
    )
    net = create_model("googlenet", weights="test", num_classes=3, aux_logits=True)
    assert net.fc.out_features == 3 and net.aux1.fc2.out_features == 3
    torch.testing.assert_close(net.inception5b.state_dict(), source.inception5b.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(net.aux1.conv.state_dict(), source.aux1.conv.state_dict(), rtol=0, atol=0)


def test_families_that_cannot_replace_their_head_still_refuse() -> None:
    with pytest.raises(UnknownWeightsError, match=r"have num_classes=21, not 4"):
        create_model("fcn_resnet50", weights="coco_voc", num_classes=4)


# --- other input channels: an adapted first convolution ----------------------------------------------------------


def test_other_channels_adapt_the_first_convolution_with_one_warning() -> None:
    reference = create_model("lenet5", weights="fashionmnist").eval()
    with pytest.warns(UserWarning) as caught:
        net = create_model("lenet5", weights="fashionmnist", in_channels=3).eval()
    messages = [str(w.message) for w in caught]
    assert messages == [
        "weights 'lenet5.fashionmnist': first convolution features.0 adapted from 1 to 3 input channels"
    ]
    torch.testing.assert_close(net.features[0].weight, reference.features[0].weight.repeat(1, 3, 1, 1) / 3)
    grey = torch.randn(2, 1, 28, 28)
    with torch.no_grad():  # an RGB image whose channels are equal gives what the grey image gave
        torch.testing.assert_close(net(grey.repeat(1, 3, 1, 1)), reference(grey), atol=1e-5, rtol=1e-5)

    record = net.pretrained_cfg
    assert record.in_channels == 3 and record.categories == get_weights("lenet5.fashionmnist").categories
    assert record.adapted == ("first convolution features.0 adapted from 1 to 3 input channels",)
    photo = Image.new("RGB", (64, 64), (90, 90, 90))
    x = record.transforms()(photo)
    assert x.shape == (3, 28, 28)
    with torch.no_grad():  # a grey photo: the adapted network and the original agree through their transforms
        torch.testing.assert_close(
            net(x[None]),
            reference(reference.pretrained_cfg.transforms()(photo)[None]),
            atol=1e-4,
            rtol=1e-4,
        )


def test_other_classes_and_channels_at_once(registry: Path) -> None:
    source = create_model("resnet18", num_classes=6, stem="cifar")
    path = registry / "resnet18-cifar.pth"
    torch.save(source.state_dict(), path)
    register_weights(
        Weights(
            model="resnet18",
            tag="test",
            url=path.as_uri(),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            num_classes=6,
            model_kwargs={"stem": "cifar"},
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = create_model("resnet18", weights="test", num_classes=2, in_channels=1)
    assert len(caught) == 1 and "conv1 adapted from 3 to 1 input channels" in str(caught[0].message)
    torch.testing.assert_close(net.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert net.fc.out_features == 2
    torch.testing.assert_close(net.layer4.state_dict(), source.layer4.state_dict(), rtol=0, atol=0)
    assert net.pretrained_cfg.adapted == (
        "head replaced: 6 → 2 classes, untrained",
        "first convolution conv1 adapted from 3 to 1 input channels",
    )


def test_a_network_without_a_first_convolution_refuses_other_channels_in_one_line() -> None:
    with pytest.raises(WeightsError) as info:
        create_model("mlp", weights="fashionmnist", in_channels=3)
    message = str(info.value)
    assert message.startswith(
        "weights 'mlp.fashionmnist' do not fit the network: features.1.weight is [512, 784]"
    )
    assert "only a classifier's outputs and the first convolution's input channels can differ" in message
    assert "\n" not in message and isinstance(info.value, ZooError)
