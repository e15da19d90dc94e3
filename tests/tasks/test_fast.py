"""The speed switches of ClassificationTask (flip test-time augmentation, channels-last, torch.compile) and fastnet."""

from __future__ import annotations

import pytest
import torch
from conftest import num_params

from zoo.errors import ZooError
from zoo.models import create_model
from zoo.models.fastnet import FastNet
from zoo.tasks import ClassificationTask


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_fastnet_shapes_and_size() -> None:
    net = create_model("fastnet")
    assert isinstance(net, FastNet) and num_params(net) == 390_890  # the figure its docstring gives
    x = torch.randn(3, 1, 28, 28)
    assert net.forward_features(x).shape == (3, 256, 3, 3)
    assert net(x).shape == (3, 10)
    deeper = create_model("fastnet", widths=[8, 16], depth=3, in_channels=3, num_classes=4)
    assert deeper(torch.randn(2, 3, 9, 9)).shape == (2, 4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in deeper.modules()) == 1 + 3


def test_fastnet_refuses_weights_and_bad_widths() -> None:
    with pytest.raises(ZooError, match="no pretrained weights"):
        ClassificationTask("fastnet", weights="fashionmnist")
    with pytest.raises(ValueError, match="positive width"):
        create_model("fastnet", widths=[])


def test_flip_tta_averages_the_mirror_outside_training_only() -> None:
    task = ClassificationTask("fastnet", tta_flip=True)
    x = torch.randn(4, 1, 28, 28)
    task.train()
    plain = task.net(x)
    assert torch.equal(task(x), plain)  # training sees the images as they are
    task.eval()
    with torch.no_grad():
        expected = (task.net(x) + task.net(x.flip(3))) / 2
        assert torch.allclose(task(x), expected, atol=1e-6)
        assert not torch.allclose(task(x), task.net(x), atol=1e-4)  # the mirror does change the logits
        # an image and its mirror get the same prediction: the average is symmetric
        assert torch.allclose(task(x), task(x.flip(3)), atol=1e-5)


def test_shift_tta_weights_the_image_and_two_moved_copies_outside_training_only() -> None:
    task = ClassificationTask("fastnet", tta_flip=True, tta_shift=1)
    x = torch.randn(4, 1, 28, 28)
    task.train()
    assert torch.equal(task(x), task.net(x))
    task.eval()
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    up_left, down_right = padded[..., 2:, 2:], padded[..., :28, :28]
    assert torch.equal(up_left[..., 0, 0], x[..., 1, 1]) and torch.equal(down_right[..., 1, 1], x[..., 0, 0])

    def mirrored(images: torch.Tensor) -> torch.Tensor:
        return (task.net(images) + task.net(images.flip(3))) / 2

    with torch.no_grad():
        expected = mirrored(x) / 2 + mirrored(up_left) / 4 + mirrored(down_right) / 4
        assert torch.allclose(task(x), expected, atol=1e-6)
        assert not torch.allclose(task(x), mirrored(x), atol=1e-4)  # the moved copies do count
    with pytest.raises(ZooError, match="tta_shift must be a whole number of pixels"):
        ClassificationTask("fastnet", tta_shift=-1)


def test_channels_last_keeps_outputs_and_keys() -> None:
    plain = ClassificationTask("fastnet")
    fast = ClassificationTask("fastnet", channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = [m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d)][1].weight  # 32 input channels
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain.eval(), fast.eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-5)


def test_torch_compile_leaves_the_checkpoint_keys_alone() -> None:
    plain = ClassificationTask("lenet5", model_kwargs={"image_size": 28})
    compiled = ClassificationTask("lenet5", model_kwargs={"image_size": 28}, torch_compile=True)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert compiled._run_net is not compiled.net  # forward goes through the compiled wrapper
    assert plain._run_net is plain.net
