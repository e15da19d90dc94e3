"""How fast batches come: zoo's in-memory loader against torchvision's dataset + transforms v2 + DataLoader.

    python benchmarks/data.py                       # Fashion-MNIST, batch 128, pad 2 + crop + flip, 3 rounds
    python benchmarks/data.py --batch_size 256 --rounds 5 --workers 2

Both arms give one epoch of the 60,000 Fashion-MNIST training images as augmented, normalised ``float32``
batches: random translation by up to ``--pad`` pixels (zero padding, then a crop back to 28x28), a random
horizontal flip, and normalisation by the training set's mean and standard deviation.

* zoo: :class:`zoo.data.FashionMNISTDataModule`'s training loader: the whole set as one ``uint8`` tensor, batches
  sliced and augmented as whole tensors (:func:`zoo.data.base.crop_and_flip`).
* torchvision: ``torchvision.datasets.FashionMNIST`` (PIL images, one at a time) with
  ``v2.Compose([ToImage, RandomCrop(28, padding), RandomHorizontalFlip, ToDtype, Normalize])`` in a shuffled
  ``DataLoader`` with ``--workers`` worker processes. By default the workers start anew each epoch, as a
  ``DataLoader`` with default settings (and torchvision's reference scripts) does; ``--persistent_workers`` keeps
  them, which leaves their start-up out of every epoch but the first.

Each round times one epoch of each arm, alternating which goes first; the first round is a warm-up and is not
counted. Nothing is done with the batches but touching them. Prints the epoch times and the median ratio
torchvision / zoo (target: at least 30).

torchvision's dataset class wants the uncompressed IDX files under ``<root>/FashionMNIST/raw``; they are
unpacked from the folder zoo finds (Debian's ``dataset-fashion-mnist`` package, ``$ZOO_DATA_DIR``, ``--data_root``)
into a temporary folder.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

from zoo.cli.environment import hardware
from zoo.data import FashionMNISTDataModule

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def torchvision_root(source: Path, scratch: Path) -> Path:
    """A folder in torchvision's ``FashionMNIST/raw`` layout holding the unpacked files found in ``source``."""
    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        packed, plain = source / f"{name}.gz", source / name
        if plain.is_file():
            shutil.copyfile(plain, raw / name)
        else:
            with gzip.open(packed, "rb") as file_in, open(raw / name, "wb") as file_out:
                shutil.copyfileobj(file_in, file_out)
    return scratch


def epoch_seconds(batches: object) -> tuple[float, int]:
    """Wall time of one pass over ``batches``, and the number of images seen."""
    started = time.perf_counter()
    seen = 0
    for images, _labels in batches:  # type: ignore[attr-defined]
        seen += len(images)
    return time.perf_counter() - started, seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--pad", type=int, default=2, help="random translation of up to this many pixels")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes for torchvision")
    parser.add_argument("--persistent_workers", action="store_true", help="keep torchvision's workers alive")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds (one epoch of each arm), after a warm-up"
    )
    parser.add_argument(
        "--data_root", default=None, help="Fashion-MNIST's folder (default: the usual search)"
    )
    args = parser.parse_args()

    data = FashionMNISTDataModule(
        args.data_root, batch_size=args.batch_size, val_size=0, pad=args.pad, flip=True
    )
    data.setup("fit")
    zoo_loader = data.train_dataloader()
    mean, std = data.mean.tolist(), data.std.tolist()
    print(f"Fashion-MNIST training split, batch {args.batch_size}, pad {args.pad} + crop + flip + normalise; "
          f"torchvision with {args.workers} workers{' (persistent)' if args.persistent_workers else ''}")  # fmt: skip
    print(f"machine: {hardware()}, torch {torch.__version__}")

    with tempfile.TemporaryDirectory() as scratch:
        root = torchvision_root(data.locate(download=False), Path(scratch))
        transform = v2.Compose([
            v2.ToImage(),
            v2.RandomCrop(28, padding=args.pad),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ])  # fmt: skip
        dataset = datasets.FashionMNIST(str(root), train=True, transform=transform)
        reference = DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.persistent_workers and args.workers > 0,
        )
        ratios = []
        for round_ in range(args.rounds + 1):
            times: dict[str, float] = {}
            for arm in ("zoo", "torchvision") if round_ % 2 == 0 else ("torchvision", "zoo"):
                zoo_loader.sampler.set_epoch(round_)
                times[arm], seen = epoch_seconds(zoo_loader if arm == "zoo" else reference)
                if seen != len(dataset):
                    raise SystemExit(f"{arm} gave {seen} images, expected {len(dataset)}")
            if round_ == 0:
                print(
                    f"warm-up: zoo {times['zoo']:.3f} s, torchvision {times['torchvision']:.2f} s (not counted)"
                )
                continue
            ratios.append(times["torchvision"] / times["zoo"])
            print(f"round {round_}: zoo {times['zoo']:.3f} s, torchvision {times['torchvision']:.2f} s, "
                  f"ratio {ratios[-1]:.1f}", flush=True)  # fmt: skip
    print(f"median ratio torchvision/zoo: {statistics.median(ratios):.1f}x over {args.rounds} rounds "
          f"(min {min(ratios):.1f}, max {max(ratios):.1f}); target >= 30")  # fmt: skip


if __name__ == "__main__":
    main()
