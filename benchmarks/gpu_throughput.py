"""Training throughput on one device: zoo's task through Lightning's Trainer against a plain loop, for four networks
and four settings (fp32, bf16-mixed, channels-last, torch.compile).

    python benchmarks/gpu_throughput.py                                  # the GPU, every network and setting
    python benchmarks/gpu_throughput.py --nets resnet20 --settings fp32 bf16-mixed --steps 100
    python benchmarks/gpu_throughput.py --device cpu --steps 3 --warmup 1 --batch_size 8   # does it run?

Each network trains on random images of its data's shape (32x32 RGB for the CIFAR networks, 28x28 grey for
fastnet) already on the device, with SGD and a fixed batch size, so only the training step is measured:

* ``plain``: forward, cross-entropy, backward, step, ``zero_grad``, in a ``for`` loop, under ``torch.autocast``
  for bf16-mixed, with weights and batches in channels-last for that setting, through ``torch.compile`` for that.
* ``zoo``: :class:`zoo.tasks.ClassificationTask` (its metrics and logging included) with the same network and
  batches from an in-memory DataModule, through ``lightning.Trainer.fit`` with ``precision``, the task's
  ``channels_last`` and ``torch_compile``; no validation, checkpoint, logger or progress bar.

After ``--warmup`` steps (compilation happens there), ``--steps`` steps are timed between two device
synchronisations. Prints images/s of each arm and the ratio zoo / plain for every network and setting, with the
device named.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.cli.environment import quiet_defaults
from zoo.models import create_model
from zoo.tasks import ClassificationTask

#: network → (the builder's options, the shape of one image)
NETS: dict[str, tuple[dict[str, Any], tuple[int, int, int]]] = {
    "resnet20": ({"in_channels": 3}, (3, 32, 32)),
    "resnet18_cifar": ({"in_channels": 3}, (3, 32, 32)),
    "vgg16_bn": ({"in_channels": 3, "head": "cifar"}, (3, 32, 32)),
    "fastnet": ({"in_channels": 1}, (1, 28, 28)),
}
SETTINGS = ("fp32", "bf16-mixed", "channels-last", "compile")


def synchronise(device: torch.device) -> None:
    """Wait for the device to finish its queued work (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(shape: tuple[int, int, int], batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Eight random batches of images and labels on the device, cycled through by both arms."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, batch_size, *shape, generator=generator).to(device)
    return images, torch.randint(0, 10, (8, batch_size), generator=generator).to(device)


def plain(net_name: str, setting: str, args: argparse.Namespace, device: torch.device) -> float:
    """Images/s of the plain loop."""
    options, shape = NETS[net_name]
    torch.manual_seed(0)
    net: nn.Module = create_model(net_name, num_classes=10, **options).to(device)
    memory = torch.channels_last if setting == "channels-last" else torch.contiguous_format
    net = net.to(memory_format=memory)
    run = torch.compile(net) if setting == "compile" else net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    images, labels = batches(shape, args.batch_size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=setting == "bf16-mixed")

    def step(index: int) -> None:
        with autocast:
            loss = F.cross_entropy(run(images[index % 8].contiguous(memory_format=memory)), labels[index % 8])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for index in range(args.warmup):
        step(index)
    synchronise(device)
    started = time.perf_counter()
    for index in range(args.steps):
        step(index)
    synchronise(device)
    return args.steps * args.batch_size / (time.perf_counter() - started)


class StepClock(L.Callback):
    """Times the training steps after ``warmup``, between two device synchronisations."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.started, self.seconds = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.warmup:
            synchronise(trainer.strategy.root_device)
            self.started = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        synchronise(trainer.strategy.root_device)
        self.seconds = time.perf_counter() - self.started


class RandomImages(L.LightningDataModule):
    """The plain loop's batches, as a DataModule: already on the device, cycled."""

    def __init__(self, images: Tensor, labels: Tensor, steps: int) -> None:
        super().__init__()
        self.images, self.labels, self.steps = images, labels, steps

    def train_dataloader(self) -> Any:
        """``steps`` batches, cycling through the eight (a list would be taken for a list of loaders)."""
        return iter([(self.images[i % 8], self.labels[i % 8]) for i in range(self.steps)])


def zoo(net_name: str, setting: str, args: argparse.Namespace, device: torch.device) -> float:
    """Images/s of zoo's task through the Trainer."""
    options, shape = NETS[net_name]
    torch.manual_seed(0)
    in_channels = options["in_channels"]
    kwargs = {key: value for key, value in options.items() if key != "in_channels"}
    task = ClassificationTask(net_name, num_classes=10, in_channels=in_channels, model_kwargs=kwargs,
                              channels_last=setting == "channels-last", torch_compile=setting == "compile")  # fmt: skip
    task.configure_optimizers = lambda: torch.optim.SGD(task.parameters(), lr=0.01, momentum=0.9)  # type: ignore[method-assign]
    images, labels = batches(shape, args.batch_size, device)
    clock = StepClock(args.warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision="bf16-mixed" if setting == "bf16-mixed" else "32-true",
        max_steps=args.warmup + args.steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(task, datamodule=RandomImages(images, labels, args.warmup + args.steps))
    return args.steps * args.batch_size / clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each arm")
    parser.add_argument(
        "--warmup", type=int, default=30, help="untimed steps first (compilation happens here)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    quiet_defaults()
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.backends.cpu.get_cpu_capability()})"
    )
    print(f"device: {name}; torch {torch.__version__}, Lightning {L.__version__}; batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup}")  # fmt: skip
    print("\n| network | setting | plain, images/s | zoo, images/s | zoo / plain |")
    print("|---|---|---|---|---|")
    for net_name in args.nets:
        for setting in args.settings:
            mine, theirs = zoo(net_name, setting, args, device), plain(net_name, setting, args, device)
            print(
                f"| {net_name} | {setting} | {theirs:,.0f} | {mine:,.0f} | {mine / theirs:.3f} |", flush=True
            )


if __name__ == "__main__":
    main()
