"""End to end: a zoo recipe against the training loop a torchvision user writes, to the same test accuracy.

    python benchmarks/end_to_end.py                                  # fast_fashionmnist, its epochs, seed 0
    python benchmarks/end_to_end.py --epochs 8 --seeds 0 1 2
    python benchmarks/end_to_end.py --recipe lenet5_fashionmnist --epochs 2 --workers 2
    python benchmarks/end_to_end.py --limit_batches 3 --data_root tiny/    # does it run? (figures meaningless)

Both arms train the recipe's network (built from the registry with the same seed) on Fashion-MNIST's 60,000
training images for the same epochs, with the same batch size, augmentation (random translation by the recipe's
``pad`` pixels, horizontal flip), optimiser, learning-rate schedule (stepped every batch), label smoothing,
memory format and test-time augmentation (flip, and shift by ``tta_shift`` pixels), and are tested on the 10,000 test images:

* ``zoo``: ``zoo fit --recipe NAME`` as shipped (its precision included: zoo chooses it for the host), with W&B,
  figures and the progress bar off, and no validation split (``val_size 0``), so that it trains on the same
  60,000 images as the other arm. Its in-memory DataModule keeps the set as one ``uint8`` tensor and augments
  whole batches.
* ``torchvision``: what the torchvision tutorials and reference scripts teach: ``torchvision.datasets.FashionMNIST``
  with ``transforms.v2`` (``RandomCrop`` with padding, ``RandomHorizontalFlip``, ``ToDtype``, ``Normalize``) in a
  shuffled ``DataLoader`` with ``--workers`` worker processes, and a plain ``for`` loop in ``float32`` (the default
  a user does not change).

Each arm runs in a process of its own, one after the other (never side by side: on two cores they would slow each
other down), arms alternating first from seed to seed. Two times are taken for each: the training time (the
epochs alone) and the whole command's wall time (start-up, reading the data, training and the test). Prints a row
per run, then the median ratio torchvision / zoo of each time (target: at least 2 for the whole command), with the
machine and its CPU capability.

torchvision's dataset class wants the uncompressed IDX files under ``<root>/FashionMNIST/raw``; they are unpacked
from the folder zoo finds into a temporary folder (``data.py``), outside the timed command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
#: what the torchvision arm prints as its last line: a JSON object with its figures
RESULT = "result: "


def recipe_settings(recipe: str, epochs: int | None) -> dict[str, Any]:
    """What the torchvision arm copies from a zoo recipe: network, data, optimiser, schedule and epochs."""
    from zoo.cli.recipes import find_recipe, read_recipe

    config = read_recipe(find_recipe(recipe))
    model = config["model"]["init_args"]
    data = config["data"]["init_args"]
    return {
        "model": model["model"],
        "model_kwargs": model.get("model_kwargs") or {},
        "num_classes": model.get("num_classes", 10),
        "in_channels": model.get("in_channels", 1),
        "label_smoothing": model.get("label_smoothing", 0.0),
        "tta_flip": model.get("tta_flip", False),
        "tta_shift": model.get("tta_shift", 0),
        "channels_last": model.get("channels_last", False),
        "batch_size": data.get("batch_size", 128),
        "pad": data.get("pad", 0),
        "flip": data.get("flip", False),
        "drop_last": data.get("drop_last", False),
        "optimizer": config.get("optimizer"),
        "lr_scheduler": config.get("lr_scheduler"),
        "epochs": epochs or config["trainer"]["max_epochs"],
    }


def tested_logits(net: torch.nn.Module, images: torch.Tensor, *, flip: bool, shift: int) -> torch.Tensor:
    """The logits the torchvision arm tests with: with ``flip``, the mean with the mirror images'; with ``shift``,
    half those of the images and a quarter each those of copies moved ``shift`` pixels up-left and down-right, the
    borders repeated (the recipe's test-time augmentation, as a user would write it)."""

    def mirrored(batch: torch.Tensor) -> torch.Tensor:
        logits = net(batch)
        return (logits + net(batch.flip(3))) / 2 if flip else logits

    if not shift:
        return mirrored(images)
    height, width = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (shift,) * 4, mode="replicate")
    moved = padded[..., 2 * shift :, 2 * shift :], padded[..., :height, :width]
    return mirrored(images) / 2 + mirrored(moved[0]) / 4 + mirrored(moved[1]) / 4


def _instance(spec: dict[str, Any], *first: Any) -> Any:
    """The object a recipe's ``class_path``/``init_args`` names, made with ``first`` as its leading arguments."""
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return cls(*first, **(spec.get("init_args") or {}))


def torchvision_arm(
    settings: dict[str, Any], root: str, seed: int, workers: int, limit: int | None = None
) -> dict[str, Any]:
    """Train and test as a torchvision user would (``limit`` batches an epoch at most); the figures of the run."""
    from torch.nn import functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    from zoo.models import create_model

    started = time.perf_counter()
    torch.manual_seed(seed)
    mean, std = settings["mean"], settings["std"]  # as the zoo arm's DataModule normalises
    augment = [v2.RandomCrop(28, padding=settings["pad"])] if settings["pad"] else []
    augment += [v2.RandomHorizontalFlip()] if settings["flip"] else []
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    train = datasets.FashionMNIST(root, train=True, transform=v2.Compose([v2.ToImage(), *augment, *finish]))
    test = datasets.FashionMNIST(root, train=False, transform=v2.Compose([v2.ToImage(), *finish]))
    batch = settings["batch_size"]
    loader = DataLoader(train, batch_size=batch, shuffle=True, num_workers=workers, drop_last=settings["drop_last"],
                        persistent_workers=False)  # fmt: skip
    net = create_model(settings["model"], num_classes=settings["num_classes"], in_channels=settings["in_channels"],
                       **settings["model_kwargs"])  # fmt: skip
    memory = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    net = net.to(memory_format=memory)
    optimizer = _instance(settings["optimizer"], net.parameters())
    schedule = None
    if settings["lr_scheduler"]:
        init = dict(settings["lr_scheduler"].get("init_args") or {})
        spec = {"class_path": settings["lr_scheduler"]["class_path"], "init_args": init}
        if "total_steps" in _parameters(spec["class_path"]):
            init["total_steps"] = min(len(loader), limit or len(loader)) * settings["epochs"]
        schedule = _instance(spec, optimizer)
    trained = time.perf_counter()
    for _ in range(settings["epochs"]):
        net.train()
        for step, (images, labels) in enumerate(loader):
            if limit is not None and step == limit:
                break
            images = images.contiguous(memory_format=memory)
            loss = F.cross_entropy(net(images), labels, label_smoothing=settings["label_smoothing"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    train_seconds = time.perf_counter() - trained
    net.eval()
    right = 0
    with torch.no_grad():
        for images, labels in DataLoader(test, batch_size=1000, num_workers=workers):
            images = images.contiguous(memory_format=memory)
            logits = tested_logits(net, images, flip=settings["tta_flip"], shift=settings["tta_shift"])
            right += int((logits.argmax(1) == labels).sum())
    return {
        "test_acc": right / len(test),
        "train_seconds": train_seconds,
        "inside_seconds": time.perf_counter() - started,
        "precision": "32-true",
    }


def _parameters(class_path: str) -> list[str]:
    import inspect

    module, _, name = class_path.rpartition(".")
    return list(inspect.signature(getattr(__import__(module, fromlist=[name]), name)).parameters)


def run_arm(arm: str, args: argparse.Namespace, seed: int, root: str, scratch: Path) -> dict[str, Any]:
    """One run of ``arm`` in a process of its own; its figures, with the whole command's wall time."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if arm == "zoo":
        folder = scratch / f"zoo-{seed}"
        command = [
            sys.executable, "-m", "zoo", "fit", "--recipe", args.recipe, "--seed_everything", str(seed),
            "--trainer.max_epochs", str(args.settings["epochs"]), "--trainer.logger", "false",
            "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(folder),
            "--data.init_args.root", args.data_dir, "--data.init_args.val_size", "0",
        ]  # fmt: skip
        if args.limit_batches is not None:
            command += ["--trainer.limit_train_batches", str(args.limit_batches)]
    else:
        arm_args = [args.settings, root, seed, args.workers, args.limit_batches]
        command = [sys.executable, __file__, "--_arm", json.dumps(arm_args)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{arm} (seed {seed}) failed:\n{done.stderr[-3000:]}")
    if arm == "torchvision":
        result = json.loads(done.stdout.strip().splitlines()[-1].removeprefix(RESULT))
    else:
        (metrics_file,) = folder.glob("*/*/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        result = {
            "test_acc": metrics["test"]["test_acc"],
            "train_seconds": metrics["fit_seconds"],
            "precision": str(metrics.get("precision", "the recipe's")),
        }
    return {**result, "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="fast_fashionmnist")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs for both arms (default: the recipe's)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2, help="the torchvision arm's DataLoader workers")
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    parser.add_argument(
        "--limit_batches", type=int, default=None, help="training batches an epoch, to check that it runs"
    )
    parser.add_argument("--_arm", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._arm is not None:  # the torchvision arm, in its own process
        print(RESULT + json.dumps(torchvision_arm(*json.loads(args._arm))))
        return

    sys.path.insert(0, str(HERE))
    from data import torchvision_root

    from zoo.cli.environment import hardware
    from zoo.data import FashionMNISTDataModule

    args.settings = recipe_settings(args.recipe, args.epochs)
    data = FashionMNISTDataModule(args.data_root, val_size=0)
    data.setup("fit")
    assert data.mean is not None and data.std is not None  # set by setup
    args.settings["mean"], args.settings["std"] = data.mean.tolist(), data.std.tolist()
    source = data.locate(download=False)
    args.data_dir = str(source)
    print(
        f"machine: {hardware()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"
    )
    print(f"{args.recipe}: {args.settings['model']}, batch {args.settings['batch_size']}, "
          f"{args.settings['epochs']} epochs; torchvision arm with {args.workers} DataLoader workers")  # fmt: skip
    rows: list[tuple[int, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = str(torchvision_root(source, Path(scratch) / "torchvision"))
        for turn, seed in enumerate(args.seeds):
            for arm in ("zoo", "torchvision") if turn % 2 == 0 else ("torchvision", "zoo"):
                result = run_arm(arm, args, seed, root, Path(scratch))
                rows.append((seed, arm, result))
                print(f"seed {seed} {arm:>11}: test accuracy {result['test_acc']:.4f}, training "
                      f"{result['train_seconds']:.1f} s, whole command {result['wall_seconds']:.1f} s, "
                      f"precision {result['precision']}", flush=True)  # fmt: skip
    print("\n| arm | test accuracy (mean) | training (median) | whole command (median) |")
    print("|---|---|---|---|")
    figures = {}
    for arm in ("zoo", "torchvision"):
        mine = [result for _, name, result in rows if name == arm]
        figures[arm] = {
            key: statistics.median(r[key] for r in mine) for key in ("train_seconds", "wall_seconds")
        }
        accuracy = statistics.mean(r["test_acc"] for r in mine)
        print(f"| {arm} | {100 * accuracy:.2f}% | {figures[arm]['train_seconds']:.1f} s | "
              f"{figures[arm]['wall_seconds']:.1f} s |")  # fmt: skip
    for key, name in (("train_seconds", "training"), ("wall_seconds", "whole command")):
        # metrics.json gives times to 0.1 s: a check run of a few batches may take "0.0 s"
        ratio = figures["torchvision"][key] / max(figures["zoo"][key], 0.05)
        print(f"torchvision / zoo, {name}: {ratio:.2f}x")
    print("target: at least 2x for the whole command")


if __name__ == "__main__":
    main()
