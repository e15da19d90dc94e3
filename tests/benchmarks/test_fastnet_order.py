"""benchmarks/fastnet_order.py: the VGG-order network it times fastnet against, and its short mode end to end."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from conftest import load_benchmark
from torch import nn

from zoo.models import create_model


@pytest.fixture(scope="module")
def order() -> ModuleType:
    return load_benchmark("fastnet_order")


def kinds(net: nn.Module) -> list[str]:
    return [type(m).__name__ for m in net.modules() if not list(m.children())]


def test_the_vgg_order_moves_each_pool_behind_the_gelu_and_changes_nothing_else(order: ModuleType) -> None:
    fastnet, vgg = create_model("fastnet"), order.vgg_order()
    assert sorted(kinds(vgg)) == sorted([*kinds(fastnet), "Flatten"])  # fastnet flattens in its forward_head
    shapes = [tuple(p.shape) for p in fastnet.parameters()]
    assert [tuple(p.shape) for p in vgg.parameters()] == shapes
    # the VGG order pools after the GELU; airbench's (fastnet's) ahead of the norm
    assert kinds(vgg)[:4] == ["Conv2d", "BatchNorm2d", "GELU", "MaxPool2d"]
    assert kinds(fastnet)[:4] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "GELU"]
    assert vgg(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_the_benchmark_prints_its_machine_both_orders_and_the_ratio(
    order: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    order.main(["--batch_size", "8", "--steps", "1", "--rounds", "2", "--precision", "32-true"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Machine: ") and "CPU capability" in out[0]
    assert [line.split(":")[0] for line in out[2:4]] == ["airbench order (fastnet)", "VGG order"]
    assert out[4].startswith("airbench order / VGG order: ") and out[4].endswith("2 rounds)")
