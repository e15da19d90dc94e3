"""``zoo visualize --ckpt_path CKPT --what WHAT --output DIR``: see inside a trained network (or, with
``--what kernels --image PHOTO``, what a convolution does, with no network).

``WHAT`` is one of

- ``featuremaps``: what the first and last convolutions (or ``--layer``) output for a few test images;
- ``filters``: the first layer's weights (or ``--layer``'s) as images;
- ``confusion``: the confusion matrix over the whole test split;
- ``saliency``: for a few test images, ``|d logit_true / d input|`` (which pixels the true class's score is most
  sensitive to), drawn next to each image;
- ``maximize``: inputs optimised by gradient ascent to excite one filter (``--layer L --channel N``), the first 16
  filters of a layer (``--layer L``), one class (``--target NAME|INDEX``) or every class (the default), kept in
  the data's pixel range, small (an L2 penalty) and smooth (blurred every few steps): :mod:`zoo.figures.maximize`;
- ``kernels``: hand-designed 3x3 kernels (and ``--kernel``) applied to ``--image`` in grey with each edge handling,
  and a max pool: :mod:`zoo.figures.kernels`. It reads no checkpoint.

The checkpoint is read as ``zoo test`` reads it: with the ``config.yaml`` of its run folder (or ``--recipe``);
other arguments override the config (``--data.root DIR``). PNG files go into ``--output`` (created when missing); an existing file is never overwritten. Bad input gets one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from rich.console import Console
from rich.progress import track
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser, renamed
from zoo.cli.loading import load_trained
from zoo.errors import ZooError
from zoo.figures.drawing import (
    IMAGE_TILE,
    captioned_grid,
    confusion_image,
    display_images,
    heat,
    normalise_each,
    to_tiles,
)
from zoo.figures.feature_maps import default_layers, feature_map_figures
from zoo.figures.filters import filter_figure
from zoo.figures.kernels import KERNELS, corner_figure, kernel_figure, maxpool_figure, parse_kernel, to_grey
from zoo.figures.layers import capture, find_layer, first_weight_layer
from zoo.figures.maximize import ascend, class_score, layer_score
from zoo.figures.saving import write_png
from zoo.tasks.data import class_names, input_stats

__all__ = ["WHAT", "main"]

#: what the command can draw
WHAT = ("featuremaps", "filters", "confusion", "saliency", "maximize", "kernels")
#: most filters or classes optimised together by ``maximize``
MAX_TILES = 16

T = TypeVar("T")


def _parser() -> CommandParser:
    parser = CommandParser(
        "zoo visualize",
        usage="zoo visualize --ckpt_path CKPT --what {"
        + ",".join(WHAT[:-1])
        + "} --output DIR [--recipe NAME|PATH] "
        "[--layer NAME] [--channel N] [--target CLASS] [--num_images N] [--steps N] [--seed N] [--KEY VALUE ...]\n"
        "       zoo visualize --what kernels --image PHOTO --output DIR [--kernel ROWS]",
        description="Draw what a trained network sees. Other --key value arguments override the run's config "
        "(for example --data.root DIR).",
    )
    parser.add_argument("--ckpt_path", help="a checkpoint written by zoo fit (best.ckpt, last.ckpt)")
    parser.add_argument("--what", required=True, choices=WHAT, help="what to draw")
    parser.add_argument("--output", required=True, help="folder for the PNG files (created when missing)")
    parser.add_argument(
        "--recipe", help="the recipe the checkpoint was trained with, when it is not in a run folder"
    )
    parser.add_argument("--layer", help="a layer name, as in task.named_modules() (net.features.0)")
    parser.add_argument(
        "--channel", type=int, help="maximize: the filter (output channel) of --layer to excite"
    )
    parser.add_argument("--target", help="maximize: the class to excite, by name or index")
    parser.add_argument("--num_images", type=int, default=8, help="test images for featuremaps and saliency")
    parser.add_argument("--steps", type=int, default=200, help="maximize: gradient ascent steps")
    parser.add_argument("--seed", type=int, default=0, help="maximize: seeds the starting noise")
    parser.add_argument("--image", help="kernels: the photo, a file or skimage:NAME")
    parser.add_argument(
        "--kernel", help="kernels: one more kernel, rows split by ';' (0,-1,0;-1,5,-1;0,-1,0)"
    )
    return parser


def _progress(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr (shown only on a terminal)."""
    console = Console(stderr=True)
    yield from track(
        items,
        description=description,
        total=total,
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


# ---- loading -------------------------------------------------------------------------------------------------


def _test_loader(data: Any) -> Any:
    data.prepare_data()
    data.setup("test")
    return data.test_dataloader()


def _test_images(data: Any, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` test images ``(B, C, H, W)`` and their labels ``(B,)``, on the CPU."""
    images: list[Tensor] = []
    labels: list[Tensor] = []
    have = 0
    for batch_images, batch_labels in _test_loader(data):
        images.append(batch_images[: count - have].cpu())
        labels.append(batch_labels[: count - have].cpu())
        have += len(images[-1])
        if have >= count:
            break
    if not have:
        raise ZooError("the test split has no images")
    return torch.cat(images), torch.cat(labels)


def _device(task: nn.Module) -> torch.device:
    return next(task.parameters()).device


def _names(task: nn.Module, data: Any) -> list[str]:
    names = class_names(task, data)
    if names is None:
        raise ZooError(f"{type(task).__name__} does not say how many classes it predicts")
    return names


# ---- what can be drawn ---------------------------------------------------------------------------------------
# Each returns the files it will write and a function drawing them, so that existing files are found before any
# work is done.

Plan = tuple[list[str], Callable[[], list[Image.Image]]]


def _featuremaps(task: nn.Module, data: Any, options: argparse.Namespace) -> Plan:
    if options.layer is not None:
        find_layer(task, options.layer)
        layers = [options.layer]
    else:
        layers = default_layers(task)
        if not layers:
            raise ZooError("the network has no convolution; name a layer with --layer")

    def draw() -> list[Image.Image]:
        images, _ = _test_images(data, options.num_images)
        mean, std = input_stats(data)
        figures = feature_map_figures(task, images, layers, mean=mean, std=std)
        for name in layers:
            if name not in figures:
                raise ZooError(f"layer '{name}' does not output feature maps (B, C, H, W)")
        return [figures[name] for name in layers]

    return [f"featuremaps-{name}.png" for name in layers], draw


def _filters(task: nn.Module, data: Any, options: argparse.Namespace) -> Plan:
    if options.layer is not None:
        name, layer = options.layer, find_layer(task, options.layer)
    else:
        found = first_weight_layer(task)
        if found is None:
            raise ZooError("the network has no convolution or linear layer")
        name, layer = found

    def draw() -> list[Image.Image]:
        # a linear layer's inputs are whole images: its weights are drawn in their shape
        shape = tuple(_test_images(data, 1)[0].shape[1:]) if isinstance(layer, nn.Linear) else None
        figure = filter_figure(layer, image_shape=shape)
        if figure is None:
            raise ZooError(f"layer '{name}' has no weights that can be drawn as images")
        return [figure]

    return [f"filters-{name}.png"], draw


def _confusion(task: nn.Module, data: Any, options: argparse.Namespace) -> Plan:
    names = _names(task, data)

    def draw() -> list[Image.Image]:
        device = _device(task)
        metric = MulticlassConfusionMatrix(len(names)).to(device)
        loader = _test_loader(data)
        with torch.no_grad():
            for images, labels in _progress(loader, len(loader), "test split"):
                metric.update(task(images.to(device)).argmax(dim=1), labels.to(device))
        matrix = metric.compute().cpu()
        accuracy = float(matrix.diag().sum() / matrix.sum().clamp_min(1))
        print(f"test accuracy {accuracy:.4f} over {int(matrix.sum())} images")
        return [confusion_image(matrix, names)]

    return ["confusion.png"], draw


def _saliency(task: nn.Module, data: Any, options: argparse.Namespace) -> Plan:
    names = _names(task, data)

    def draw() -> list[Image.Image]:
        images, labels = _test_images(data, options.num_images)
        device = _device(task)
        inputs = images.to(device).requires_grad_(True)
        logits = task(inputs)
        logits.gather(1, labels.to(device)[:, None]).sum().backward()
        assert inputs.grad is not None
        saliency = inputs.grad.abs().amax(dim=1).cpu()  # the most sensitive channel of each pixel
        mean, std = input_stats(data)
        pictures = to_tiles(display_images(images, mean, std), IMAGE_TILE)
        maps = to_tiles(heat(normalise_each(saliency)), IMAGE_TILE)
        confidence, predicted = logits.detach().softmax(dim=1).max(dim=1)
        tiles: list[Tensor] = []
        captions: list[tuple[str, str]] = []
        wrong: list[bool] = []
        for index, (label, guess) in enumerate(zip(labels.tolist(), predicted.tolist(), strict=True)):
            tiles += [pictures[index], maps[index]]
            captions += [
                (f"true: {names[label]}", f"{names[guess]} {float(confidence[index]):.0%}"),
                ("|d logit_true/dx|", f"max {float(saliency[index].max()):.2g}"),
            ]
            wrong += [guess != label] * 2
        return [captioned_grid(torch.stack(tiles), captions, min(8, len(tiles)), wrong=wrong)]

    return ["saliency.png"], draw


def _maximize(task: nn.Module, data: Any, options: argparse.Namespace) -> Plan:
    names = _names(task, data)
    targets: list[int] = []
    if options.layer is not None:
        if options.target is not None:
            raise ZooError("--target (a class) and --layer (a filter) exclude each other; give one")
        find_layer(task, options.layer)
        file = f"maximize-{options.layer}" + ("" if options.channel is None else f"-{options.channel}")
    elif options.channel is not None:
        raise ZooError("--channel needs --layer")
    elif options.target is not None:
        targets = [_class_index(options.target, names)]
        file = f"maximize-class-{targets[0]}"
    else:
        targets = list(range(min(len(names), MAX_TILES)))
        file = "maximize-classes"

    def draw() -> list[Image.Image]:
        shape = tuple(_test_images(data, 1)[0].shape[1:])
        mean, std = input_stats(data)
        if options.layer is not None:
            channels = _channels_of(task, options.layer, shape, options.channel)
            score = layer_score(task, options.layer, channels)
            captions = [(options.layer, f"channel {c}") for c in channels]
        else:
            score = class_score(task, targets)
            captions = [(f"class {t}", names[t]) for t in targets]
        inputs, reached = ascend(
            score,
            len(captions),
            shape,
            device=_device(task),
            steps=options.steps,
            seed=options.seed,
            mean=mean,
            std=std,
            progress=lambda steps: _progress(steps, options.steps, "gradient ascent"),
        )
        captions = [
            (first, f"{second}: {value:.3g}")
            for (first, second), value in zip(captions, reached, strict=True)
        ]
        tiles = to_tiles(display_images(inputs, mean, std), IMAGE_TILE)
        return [captioned_grid(tiles, captions, min(8, len(captions)))]

    return [f"{file}.png"], draw


def _class_index(target: str, names: list[str]) -> int:
    if target in names:
        return names.index(target)
    if target.isdigit() and int(target) < len(names):
        return int(target)
    raise ZooError(
        f"--target '{target}' is not a class; the classes are 0..{len(names) - 1}: {', '.join(names)}"
    )


def _channels_of(task: nn.Module, layer: str, shape: tuple[int, ...], channel: int | None) -> list[int]:
    """The channels of ``layer`` to excite: ``channel``, checked, or the first :data:`MAX_TILES`."""
    with torch.no_grad(), capture({layer: find_layer(task, layer)}) as outputs:
        task(torch.zeros(1, *shape, device=_device(task)))
    output = outputs.get(layer)
    if output is None or output.ndim not in (2, 4):
        raise ZooError(f"layer '{layer}' outputs no channels to excite")
    count = output.shape[1]
    if channel is None:
        return list(range(min(count, MAX_TILES)))
    if not 0 <= channel < count:
        raise ZooError(f"--channel {channel}: layer '{layer}' has channels 0..{count - 1}")
    return [channel]


def _kernels(options: argparse.Namespace, overrides: list[str]) -> Plan:
    if overrides:
        raise ZooError(
            f"--what kernels reads no checkpoint or config; unknown arguments: {' '.join(overrides)}"
        )
    if options.image is None:
        raise ZooError("--what kernels needs --image PHOTO (a file or skimage:NAME)")
    from zoo.data.readers.images import read_image

    kernels = dict(KERNELS)
    if options.kernel is not None:
        kernels["--kernel"] = parse_kernel(options.kernel)
    grey = to_grey(read_image(options.image))

    def draw() -> list[Image.Image]:
        return [kernel_figure(grey, kernels), corner_figure(grey, kernels), maxpool_figure(grey)]

    return ["kernels.png", "kernels-corner.png", "kernels-maxpool.png"], draw


_PLANS: dict[str, Callable[[nn.Module, Any, argparse.Namespace], Plan]] = {
    "featuremaps": _featuremaps,
    "filters": _filters,
    "confusion": _confusion,
    "saliency": _saliency,
    "maximize": _maximize,
}


# ---- entry point ---------------------------------------------------------------------------------------------


def _run(options: argparse.Namespace, overrides: list[str]) -> None:
    out = Path(options.output).expanduser()
    if out.exists() and not out.is_dir():
        raise ZooError(f"--output {out} is a file, not a folder")
    if options.num_images < 1 or options.steps < 1:
        raise ZooError("--num_images and --steps must be at least 1")
    if options.what == "kernels":
        files, draw = _kernels(options, overrides)
    elif options.ckpt_path is None:
        raise ZooError(f"--what {options.what} needs --ckpt_path CKPT (a checkpoint written by zoo fit)")
    else:
        import lightning  # noqa: F401  (it sets its loggers' levels when imported: quieten them after)

        for name in ("lightning.pytorch", "lightning.fabric"):  # "Seed set", "GPU available": not news here
            logging.getLogger(name).setLevel(logging.WARNING)
        task, data = load_trained(options.ckpt_path, recipe=options.recipe, overrides=overrides)
        files, draw = _PLANS[options.what](task, data, options)
    for file in files:
        if (out / file).exists():
            raise ZooError(f"{out / file} exists; choose another --output folder or move the file")
    for file, figure in zip(files, draw(), strict=True):
        print(f"wrote {write_png(figure, out / file)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo visualize``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo visualize", list(sys.argv[1:] if argv is None else argv), ["--ckpt_path", "--output"]
    )
    return answer_bad_input("zoo visualize", lambda: _run(*_parser().parse_known_args(arguments)))
