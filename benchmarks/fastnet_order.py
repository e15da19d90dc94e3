"""fastnet's order of layers against the VGG order, in training steps side by side.

    python benchmarks/fastnet_order.py                          # batch 256, bf16 autocast, channels-last, 5 rounds
    python benchmarks/fastnet_order.py --precision 32-true      # float32
    python benchmarks/fastnet_order.py --steps 2 --rounds 1     # a quick check that it runs (no real figures)

``fastnet`` pools right after a stage's last convolution, ahead of its batch norm and GELU (airbench's order:
convolution, pool, norm, activation). The VGG order pools after the GELU. Both networks have the same convolutions at
the same map sizes and the same parameters; in airbench's order, the norm and GELU at the end of each stage run on a
quarter of the pixels. This script times training steps of both on one random batch of 1x28x28 images, as
``fast_fashionmnist`` trains (forward under autocast, cross-entropy with label smoothing 0.1, backward, Nesterov SGD),
for ``--steps`` steps a network a round, in an order alternating from round to round after a warm-up. It prints the
machine, each order's median step time, and the median and quartiles of the per-round ratio (airbench order / VGG
order).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from zoo.cli.environment import hardware
from zoo.cli.speed import cpu_capability
from zoo.models import create_model

_WIDTHS = (32, 64, 128, 256)  # fastnet's default widths
_WARM_UP = 3


def vgg_order(widths: Sequence[int] = _WIDTHS, num_classes: int = 10) -> nn.Sequential:
    """fastnet's convolutions, norms, pools and head with each pool after the GELU, before the next convolution."""
    layers: list[nn.Module] = []
    for index, (channels_in, channels_out) in enumerate(pairwise([1, *widths])):
        if index > 0:
            layers.append(nn.MaxPool2d(2))
        layers += [
            nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        ]
        layers.append(nn.GELU())
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes)]
    return nn.Sequential(*layers)


class Stepper:
    """Training steps of one network on one random batch, as ``fast_fashionmnist`` takes them."""

    def __init__(self, net: nn.Module, batch_size: int, *, bf16: bool) -> None:
        generator = torch.Generator().manual_seed(0)
        self.net = net.to(memory_format=torch.channels_last)
        images = torch.randn(batch_size, 1, 28, 28, generator=generator)
        self.images = images.contiguous(memory_format=torch.channels_last)
        self.labels = torch.randint(0, 10, (batch_size,), generator=generator)
        self.optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        self.bf16 = bf16

    def __call__(self, steps: int) -> float:
        """Take ``steps`` steps; returns the mean seconds a step."""
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = F.cross_entropy(self.net(self.images), self.labels, label_smoothing=0.1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return (time.perf_counter() - start) / steps


def main(argv: Sequence[str] | None = None) -> None:
    """Time both orders and print the machine, their step times and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="steps a network a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", choices=["bf16-mixed", "32-true"], default="bf16-mixed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    nets = {"airbench order (fastnet)": create_model("fastnet"), "VGG order": vgg_order()}
    sizes = {sum(p.numel() for p in net.parameters()) for net in nets.values()}
    assert len(sizes) == 1, f"the two orders must have the same parameters, got {sizes}"
    steppers = {
        name: Stepper(net, args.batch_size, bf16=args.precision == "bf16-mixed") for name, net in nets.items()
    }
    for stepper in steppers.values():
        stepper(_WARM_UP)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for round_ in range(args.rounds):
        for name in list(steppers)[:: 1 if round_ % 2 == 0 else -1]:
            times[name].append(steppers[name](args.steps))
    ratios = [a / b for a, b in zip(*times.values(), strict=True)]
    print(f"Machine: {hardware()}, CPU capability {cpu_capability()}")
    print(
        f"fastnet, batch {args.batch_size}, {args.precision}, channels-last; {args.steps} steps x {args.rounds} rounds"
    )
    for name, seconds in times.items():
        print(f"{name}: {statistics.median(seconds) * 1000:.1f} ms a step (median)")
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(
        f"airbench order / VGG order: {statistics.median(ratios):.3f} "
        f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}, {len(ratios)} rounds)"
    )


if __name__ == "__main__":
    main()
