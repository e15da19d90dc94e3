"""``zoo summary MODEL|--recipe NAME``: a Keras-style table of a registered network, layer by layer.

Each row is a layer that holds parameters or changes the shape of the data, with its output shape, parameters
and receptive field (see :mod:`zoo.models.summary`). ``--recipe`` summarises the network a recipe trains, with
the recipe's options. Examples::

    zoo summary keras_cnn
    zoo summary resnet20 --input_size 3 32 32
    zoo summary vgg16_bn --input_size 3 32 32 --num_classes 10 --option head=cifar
    zoo summary --recipe lenet5_fashionmnist
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import yaml

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser, renamed
from zoo.cli.recipes import find_recipe, read_recipe
from zoo.cli.runs import lookup
from zoo.errors import ZooError

__all__ = ["main"]


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ZooError(f"--option expects KEY=VALUE, got '{text}'")
    return key, yaml.safe_load(value)


def _parser() -> CommandParser:
    parser = CommandParser(
        "zoo summary",
        usage="zoo summary MODEL|--recipe NAME|PATH [--input_size C H W] [--num_classes N] [--option KEY=VALUE ...]",
        description="A Keras-style table of a network: output shapes, parameters, receptive fields.",
    )
    parser.add_argument("model", nargs="?", help="a registered model name (zoo.models.list_models())")
    parser.add_argument(
        "--recipe", help="summarise the network of this recipe (name or file), with its options"
    )
    parser.add_argument(
        "--input_size",
        nargs=3,
        type=int,
        metavar=("C", "H", "W"),
        help="default: the image_size option, else 28x28 for one channel, 32x32 for a CIFAR head or stem, else 224x224",
    )
    parser.add_argument("--num_classes", type=int, help="output logits (default: the builder's)")
    parser.add_argument(
        "--option",
        type=str,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a builder option (repeatable)",
    )
    return parser


def _from_recipe(name: str) -> tuple[str, dict[str, Any]]:
    """The model name and builder options of a recipe's task."""
    recipe = read_recipe(find_recipe(name))
    found, model = lookup(recipe, "model.model")
    if not found or not isinstance(model, str):
        raise ZooError(f"recipe {name} does not name a registered network (model.init_args.model)")
    options: dict[str, Any] = {}
    for key in ("num_classes", "in_channels"):
        found, value = lookup(recipe, f"model.{key}")
        if found:
            options[key] = value
    options.update(lookup(recipe, "model.model_kwargs")[1] or {})
    return model, options


def _run(argv: Sequence[str]) -> None:
    from zoo.models import create_model
    from zoo.models.summary import default_input_size, format_table, input_channels, summarize

    args = _parser().parse_args(argv)
    if (args.model is None) == (args.recipe is None):
        raise ZooError("name one network: a MODEL or --recipe NAME")
    name, options = _from_recipe(args.recipe) if args.recipe else (args.model, {})
    options.update(dict(_option(text) for text in args.option))
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.input_size:
        options["in_channels"] = args.input_size[0]
    try:
        model = create_model(name, **options)
    except (TypeError, ValueError) as error:
        raise ZooError(str(error)) from error
    if args.input_size:
        input_size = tuple(args.input_size)
    else:
        input_size = default_input_size(input_channels(model), options)
    if min(input_size) < 1:
        raise ZooError(f"input size {input_size} must be positive")
    try:
        rows = summarize(model, input_size)
    except RuntimeError as error:
        c, h, w = input_size
        raise ZooError(f"{name} cannot take a {h}x{w}x{c} input: {str(error).splitlines()[0]}") from error
    print(f"{name}: input {input_size[1]}x{input_size[2]}x{input_size[0]}")
    print(format_table(model, rows, input_size))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoo summary``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo summary", list(sys.argv[1:] if argv is None else argv), ["--input_size", "--num_classes"]
    )
    return answer_bad_input("zoo summary", lambda: _run(arguments))
