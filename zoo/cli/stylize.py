"""``zoo stylize --style IMG --output PNG [--content IMG|default]``: paint one image in the style of another.

Two methods:

* ``--method gatys`` (default): Gatys et al. 2015, optimising the pixels against a VGG-19 loss network with the
  PyTorch tutorial's settings (L-BFGS, 300 steps, style weight 1e6, content weight 1). Minutes on a CPU.
* ``--method johnson --ckpt_path CKPT``: one forward pass of a transformer net trained by
  ``zoo fit --recipe style_fast`` (its style is fixed by the training, so ``--style`` is not used).

Gatys' method needs the loss network's trained weights: torchvision's ImageNet VGG-19 file, found in torch's hub
cache or downloaded once, or a local copy given with ``--loss_weights FILE``. Without them it stops with one line
instead of painting noise. The output file is never overwritten. Bad input: one line on stderr, exit status 2.

Examples::

    zoo stylize --style starry_night.jpg --output astronaut-starry.png
    zoo stylize --content photo.jpg --style skimage:hubble_deep_field --output photo-hubble.png --size 384
    zoo stylize --method johnson --ckpt_path runs/style_fast/<time>/best.ckpt --content photo.jpg \\
        --output photo-fast.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import OLD_SPELLINGS, CommandParser, renamed
from zoo.errors import DataError, ZooError

if TYPE_CHECKING:
    import torch

__all__ = ["build_parser", "main"]

#: ``--content default`` (and no ``--content``): scikit-image's astronaut photo
DEFAULT_CONTENT = "skimage:astronaut"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m zoo.stylize``."""
    from zoo.tasks.style_transfer import GATYS_CONTENT_WEIGHT, GATYS_STEPS, GATYS_STYLE_WEIGHT

    parser = CommandParser(
        "zoo stylize",
        usage="zoo stylize --style IMG --output PNG [--content IMG] [--method gatys|johnson] [--ckpt_path CKPT] "
        "[--size S] [--steps N] [--optimizer lbfgs|adam] [--lr LR] [--style_weight W] [--content_weight W] "
        "[--tv_weight W] [--loss_weights FILE | --random_loss_network] [--device DEVICE]",
        description="Paint an image in the style of another (Gatys et al. 2015), or with a trained "
        "fast style transfer network (Johnson et al. 2016).",
    )
    add = parser.add_argument
    add(
        "--content",
        default="default",
        metavar="IMG",
        help="content image: a file, skimage:NAME, or 'default' (scikit-image's astronaut, the default)",
    )
    add("--style", metavar="IMG", help="style image: a file or skimage:NAME (for --method gatys)")
    add("--output", required=True, metavar="PNG", help="PNG file to write; never overwritten")
    add("--method", choices=("gatys", "johnson"), default="gatys", help="default: %(default)s")
    add(
        "--size",
        type=int,
        default=None,
        metavar="S",
        help="shorter side of the output in pixels; default: 512 with a GPU, 256 without",
    )
    add("--steps", type=int, default=GATYS_STEPS, metavar="N", help="gatys: loss evaluations (%(default)s)")
    add("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="gatys (default %(default)s)")
    add("--lr", type=float, default=None, help="gatys: learning rate (default 1 for L-BFGS, 0.02 for Adam)")
    add("--style_weight", type=float, default=GATYS_STYLE_WEIGHT, help="gatys (default %(default)g)")
    add("--content_weight", type=float, default=GATYS_CONTENT_WEIGHT, help="gatys (default %(default)g)")
    add("--tv_weight", type=float, default=0.0, help="gatys: total variation weight (default %(default)g)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--loss_weights",
        default="imagenet",
        metavar="FILE",
        help="gatys: 'imagenet' (torchvision's VGG-19 file, from torch's hub cache or downloaded "
        "once; the default) or a local torchvision vgg19 state dict file",
    )
    weights.add_argument(
        "--random_loss_network",
        action="store_true",
        help="gatys: an untrained VGG-19, for tests only (the image comes out meaningless)",
    )
    add("--ckpt_path", metavar="CKPT", help="johnson: a checkpoint written by `zoo fit --recipe style_fast`")
    add("--device", default=None, help="torch device; default: cuda when available, else cpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``zoo stylize``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo stylize", list(sys.argv[1:] if argv is None else argv), list(OLD_SPELLINGS.values())
    )

    def run() -> None:
        args = build_parser().parse_args(arguments)
        out = _checked_output(Path(args.output).expanduser())
        print(f"wrote {_run(args, out)}")

    return answer_bad_input("zoo stylize", run)


def _checked_output(out: Path) -> Path:
    if out.suffix.lower() != ".png":
        raise ZooError(f"--output {out} should be a .png file")
    if out.exists():
        raise ZooError(f"{out} exists; choose another --output (outputs are never overwritten)")
    return out


def _run(args: argparse.Namespace, out: Path) -> Path:
    import torch
    from torchvision.transforms import v2

    from zoo.data.readers.images import read_image
    from zoo.tasks.style_transfer import to_pil

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or (512 if device.type == "cuda" else 256)
    if size < 16:
        raise ZooError(f"--size must be at least 16 pixels, got {size}")
    try:
        content = read_image(DEFAULT_CONTENT if args.content == "default" else args.content)
    except DataError as error:
        raise ZooError(f"--content: {error}") from None
    content = v2.functional.resize(content, [size], antialias=True)
    image = v2.functional.to_dtype(content, torch.float32, scale=True).unsqueeze(0).to(device)
    result = _johnson(args, image) if args.method == "johnson" else _gatys(args, image, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out, "xb") as file:  # "x": a file that appeared meanwhile is not overwritten either
            to_pil(result[0]).save(file, format="PNG")
    except FileExistsError:
        raise ZooError(f"{out} appeared while stylising; choose another --output") from None
    return out


def _gatys(args: argparse.Namespace, content: torch.Tensor, size: int) -> torch.Tensor:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from zoo.models.style import Losses, PerceptualLoss, loss_network
    from zoo.models.weights_files import WeightsError
    from zoo.tasks.style_transfer import gatys_stylize, load_style

    if args.style is None:
        raise ZooError("--method gatys needs --style IMG (a file or skimage:NAME)")
    if args.ckpt_path is not None:
        raise ZooError("--ckpt_path is for --method johnson")
    if args.steps < 1:
        raise ZooError(f"--steps must be at least 1, got {args.steps}")
    try:
        style = load_style(args.style, size)
    except DataError as error:
        raise ZooError(f"--style: {error}") from None
    weights = None if args.random_loss_network else args.loss_weights
    try:
        network = loss_network("vgg19", weights=weights, allow_random=args.random_loss_network)
    except WeightsError as error:
        raise ZooError(f"{error}; or pass --loss_weights FILE (a torchvision vgg19 state dict)") from None
    network.to(content.device)
    loss = PerceptualLoss(
        network,
        style.to(content.device),
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
    )
    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("gatys {task.fields[what]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
        console=console,
    ) as progress:
        task = progress.add_task("", total=args.steps, what=f"{args.optimizer} {size}px", losses="")

        def show(step: int, losses: Losses) -> None:
            total, c, s = (float(t) for t in (losses.total, losses.content, losses.style))
            text = (
                f"loss {total:.4g} (content {args.content_weight * c:.3g}, style {args.style_weight * s:.3g})"
            )
            progress.update(task, completed=step, losses=text)

        result = gatys_stylize(
            loss, content, steps=args.steps, optimizer=args.optimizer, lr=args.lr, on_step=show
        )
    console.print(f"{args.steps} steps in {time.perf_counter() - started:.1f} s")
    return result


def _johnson(args: argparse.Namespace, content: torch.Tensor) -> torch.Tensor:
    import torch

    from zoo.models.transformer_net import TransformerNet

    if args.ckpt_path is None:
        raise ZooError("--method johnson needs --ckpt_path CKPT (written by `zoo fit --recipe style_fast`)")
    path = Path(args.ckpt_path).expanduser()
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("net."): v for k, v in saved["state_dict"].items() if k.startswith("net.")}
        net = TransformerNet()
        net.load_state_dict(state)
    except Exception as error:  # unpicklable, not a checkpoint, or not a style transfer task's
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(
            f"checkpoint {path} is not a style transfer checkpoint that loads safely: {first}"
        ) from None
    net.eval().to(content.device)
    with torch.no_grad():
        return net(content).clamp(0, 1)


if __name__ == "__main__":
    sys.exit(main())
