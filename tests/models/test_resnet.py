"""ResNets: parameter counts against the papers, torchvision's layout and outputs, option A shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
import torch
import torchvision
from conftest import num_params, on_meta
from torch import nn

from zoo.models import resnet, resnet_cifar
from zoo.models.resnet import ResNet, from_torchvision
from zoo.models.resnet_cifar import CifarBasicBlock, CifarResNet, ZeroPadShortcut

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
DEPTHS = [20, 32, 44, 56, 110]
BATCH = 2


def _builder(name: str) -> Callable[..., nn.Module]:
    return getattr(resnet, name, None) or getattr(resnet_cifar, name)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- parameter counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("resnet18", {}, 11_689_512),  # torchvision
        ("resnet34", {}, 21_797_672),
        ("resnet50", {}, 25_557_032),
        ("resnet101", {}, 44_549_160),
        ("resnet152", {}, 60_192_808),
        ("resnet18_cifar", {}, 11_173_962),  # kuangliu/pytorch-cifar ResNet18
        ("resnet18", {"stem": "cifar", "num_classes": 10}, 11_173_962),
        ("resnet50", {"stem": "cifar", "num_classes": 10}, 23_520_842),  # kuangliu ResNet50
        # He et al. Table 6 (option A shortcuts have no parameters): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M
        ("resnet20", {}, 269_722),
        ("resnet32", {}, 464_154),
        ("resnet44", {}, 658_586),
        ("resnet56", {}, 853_018),
        ("resnet110", {}, 1_727_962),
    ],
)
def test_parameter_count(name: str, kwargs: dict[str, Any], expected: int) -> None:
    assert num_params(on_meta(_builder(name), **kwargs)) == expected


@pytest.mark.parametrize(("depth", "millions"), zip(DEPTHS, [0.27, 0.46, 0.66, 0.85, 1.7], strict=True))
def test_plain_nets_have_the_resnets_parameters(depth: int, millions: float) -> None:
    plain = on_meta(_builder(f"plain{depth}"))
    res = on_meta(_builder(f"resnet{depth}"))
    assert list(plain.state_dict()) == list(res.state_dict())
    assert num_params(plain) == num_params(res)
    assert round(num_params(res) / 1e6, 2 if depth < 100 else 1) == millions


# --- torchvision layout and outputs ------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGENET)
def test_state_dict_keys_match_torchvision(name: str) -> None:
    ours = on_meta(_builder(name)).state_dict()
    theirs = on_meta(getattr(torchvision.models, name), weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_outputs_match_torchvision(name: str) -> None:
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():  # non-trivial batch norms, so that a wrongly mapped statistic shows
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    ours = on_meta(_builder(name)).eval()  # takes torchvision's tensors: no second initialisation
    ours.load_state_dict(from_torchvision(theirs.state_dict()), strict=True, assign=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            ours.forward_head(ours.forward_features(x)), expected, atol=1e-5, rtol=1e-4
        )


def test_from_torchvision_keeps_the_tensors() -> None:
    state = {"conv1.weight": torch.ones(1), "fc.bias": torch.zeros(1)}
    mapped = from_torchvision(state)
    assert mapped is not state
    assert list(mapped) == list(state)
    assert all(mapped[k] is state[k] for k in state)


def test_initialisation_like_torchvision() -> None:
    model = resnet.resnet18()
    conv = model.layer3[0].conv1  # 3x3, 256 output channels: fan-out 2304
    assert abs(conv.weight.std().item() - (2 / (256 * 9)) ** 0.5) < 2e-3
    assert model.bn1.weight.eq(1).all() and model.bn1.bias.eq(0).all()
    assert model.layer1[0].bn2.weight.eq(1).all()


@pytest.mark.parametrize(("block", "last_bn"), [("basic", "bn2"), ("bottleneck", "bn3")])
def test_zero_init_residual(block: Literal["basic", "bottleneck"], last_bn: str) -> None:
    model = ResNet(block, [1, 1, 1, 1], num_classes=10, in_channels=3, zero_init_residual=True)
    blocks = [layer[0] for layer in (model.layer1, model.layer2, model.layer3, model.layer4)]
    assert all(getattr(b, last_bn).weight.eq(0).all() and b.bn1.weight.eq(1).all() for b in blocks)


def test_bottleneck_strides_on_its_3x3_convolution() -> None:
    block = on_meta(resnet.resnet50).layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)


# --- small inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "shape", "features"),
    [
        ("resnet18_cifar", {}, (3, 32, 32), (512, 4, 4)),
        ("resnet18_cifar", {}, (1, 28, 28), (512, 4, 4)),  # 28, 14, 7, 4
        ("resnet18", {"num_classes": 10}, (1, 28, 28), (512, 1, 1)),  # the ImageNet stem runs too
        ("resnet20", {}, (3, 32, 32), (64, 8, 8)),
        ("resnet20", {}, (1, 28, 28), (64, 7, 7)),
        ("plain20", {}, (3, 32, 32), (64, 8, 8)),
        ("plain20", {}, (1, 28, 28), (64, 7, 7)),
    ],
)
def test_feature_map_sizes_on_small_images(
    name: str, kwargs: dict[str, Any], shape: tuple[int, int, int], features: tuple[int, int, int]
) -> None:
    # gradients and outputs of every model at these sizes: tests/test_models.py; here only the sizes, on meta
    with torch.device("meta"):
        model = _builder(name)(in_channels=shape[0], **kwargs)
        f = model.forward_features(torch.empty(BATCH, *shape))
    assert f.shape == (BATCH, *features) and model.num_features == features[0]
    assert model.forward_head(f).shape == (BATCH, 10)


# --- option A shortcuts and plain nets ------------------------------------------------------------


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    shortcut = ZeroPadShortcut(2, 4, stride=2)
    assert list(shortcut.parameters()) == [] and list(shortcut.buffers()) == []
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(1, 2, 3, 3)
    expected = torch.tensor([[[[0.0, 2.0], [6.0, 8.0]], [[9.0, 11.0], [15.0, 17.0]]]])
    expected = torch.cat([expected, torch.zeros(1, 2, 2, 2)], dim=1)
    torch.testing.assert_close(shortcut(x), expected, rtol=0, atol=0)


def test_resnets_use_option_a_everywhere() -> None:
    model = resnet_cifar.resnet56()
    shortcuts = [block.shortcut for layer in (model.layer1, model.layer2, model.layer3) for block in layer]
    assert len(shortcuts) == 27
    assert sum(isinstance(s, ZeroPadShortcut) for s in shortcuts) == 2  # where 16→32 and 32→64
    assert all(isinstance(s, ZeroPadShortcut | nn.Identity) for s in shortcuts)
    assert not any("shortcut" in name for name in model.state_dict())


def _zeroed(block: nn.Module) -> nn.Module:
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    return block.eval()


@pytest.mark.parametrize(("in_channels", "stride"), [(16, 1), (16, 2)])
def test_plain_block_has_no_shortcut(in_channels: int, stride: int) -> None:
    x = torch.rand(BATCH, in_channels, 8, 8) + 0.1  # positive, so that ReLU passes it unchanged
    plain = _zeroed(CifarBasicBlock(in_channels, 32 if stride == 2 else 16, stride, residual=False))
    res = _zeroed(CifarBasicBlock(in_channels, 32 if stride == 2 else 16, stride, residual=True))
    assert plain.shortcut is None
    with torch.no_grad():
        assert plain(x).eq(0).all()
        out = res(x)
    torch.testing.assert_close(out[:, :in_channels], x[:, :, ::stride, ::stride], rtol=0, atol=0)
    assert out[:, in_channels:].eq(0).all()


def test_plain_net_blocks_have_no_shortcuts() -> None:
    model = resnet_cifar.plain20()
    assert all(
        block.shortcut is None for layer in (model.layer1, model.layer2, model.layer3) for block in layer
    )
    assert isinstance(model, CifarResNet) and isinstance(resnet.resnet18_cifar(), ResNet)


# --- options and bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: resnet.resnet18(stem="tiny"), "stem must be 'imagenet' or 'cifar', not 'tiny'"),
        (lambda: ResNet("wide", [2, 2, 2, 2], num_classes=10, in_channels=3), "block must be 'basic' or"),
        (lambda: ResNet("basic", [2, 2, 2], num_classes=10, in_channels=3), "four positive numbers"),
        (lambda: CifarResNet(0, num_classes=10, in_channels=3), "num_blocks must be at least 1, not 0"),
        (lambda: ZeroPadShortcut(32, 16, 2), "cannot go from 32 to 16 channels"),
        (lambda: resnet.resnet50(weights="imagenet_v9"), "model 'resnet50' has no pretrained weights"),
        (lambda: resnet.resnet50(weights="imagenet", stem="cifar"), "need stem='imagenet', not 'cifar'"),
        (lambda: resnet_cifar.plain20(weights="x"), "model 'plain20' has no pretrained weights named 'x'"),
    ],
)
def test_bad_options_raise(build: Callable[[], nn.Module], match: str) -> None:
    with pytest.raises(ValueError, match=match), torch.device("meta"):
        build()


def test_resnet18_cifar_stem_is_fixed() -> None:
    model = on_meta(resnet.resnet18_cifar)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    with pytest.raises(TypeError, match="stem"):
        resnet.resnet18_cifar(stem="imagenet")
