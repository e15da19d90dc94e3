"""``zoo export``: a trained network as a file to ship: its weights, an ONNX graph or a torch.export program.

The format is ``--format``, else the suffix of ``--output``, else safetensors; a suffix of another format than
``--format`` is refused:

* ``safetensors`` (``.safetensors``): the network's tensors only (no optimiser state, no pickled objects), for
  ``create_model(name, weights=FILE)`` and for the weights tables of :mod:`zoo.models`.
* ``onnx`` (``.onnx``): the graph and its weights for ONNX Runtime, written by torch's TorchScript-based exporter
  (``torch.onnx.export(dynamo=False)``, opset 20); it needs the ``onnx`` extra (``pip install 'zoo[onnx]'``).
* ``exported_program`` (``.pt2``): :func:`torch.export.export` saved with :func:`torch.export.save`, without the
  source stack traces it records; ``torch.export.load(FILE).module()`` runs it with torch alone.

Every file carries the model name, its classes and channels, its builder options, the test metrics its run
reached and, when known, the class names (``categories``, a JSON list: a checkpoint's ``zoo_classes``, else the
classes of the DataModule in its run folder's ``config.yaml``): safetensors metadata, ONNX ``metadata_props``,
``zoo_metadata.json`` in a ``.pt2``. ONNX graphs and exported programs take any batch of ``--input_size`` images,
and compute what the PyTorch network computes (checked before the file is written). An existing file is never
replaced. The command prints the file's SHA-256::

    zoo export --ckpt_path runs/lenet5_fashionmnist/20261121-100000/best.ckpt \\
        --output zoo/models/weights/lenet5_fashionmnist.safetensors
    zoo export --ckpt_path runs/resnet20_cifar/20261121-100000/best.ckpt --output resnet20.onnx --input_size 3 32 32
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.cli.checkpoints import run_config_of
from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser, renamed
from zoo.cli.recipes import read_recipe
from zoo.cli.runs import lookup
from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "CLASSES_KEY",
    "FORMATS",
    "PROGRAM_METADATA",
    "TOLERANCE",
    "export",
    "main",
    "output_format",
    "save_network",
]

#: format -> the suffix of its files
FORMATS: dict[str, str] = {"safetensors": ".safetensors", "onnx": ".onnx", "exported_program": ".pt2"}
#: the checkpoint key that may hold the class names, in label order
CLASSES_KEY = "zoo_classes"
#: the file inside a ``.pt2`` archive that holds the metadata, as JSON
PROGRAM_METADATA = "zoo_metadata.json"
#: how far an exported graph's outputs may be from PyTorch's (absolute, and relative to their size)
TOLERANCE = 1e-4
_INSTALL_ONNX = "pip install 'zoo[onnx]' (or pip install onnx onnxruntime)"


def output_format(out: Path, fmt: str | None = None) -> str:
    """The format to write ``out`` in: ``fmt``, else the one its suffix names, else safetensors.

    Raises:
        ZooError: ``fmt`` is unknown, the suffix names another format, or it is not the format's suffix.
    """
    by_suffix = {suffix: name for name, suffix in FORMATS.items()}.get(out.suffix)
    if fmt is None:
        fmt = by_suffix or "safetensors"
    elif fmt not in FORMATS:
        raise ZooError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    elif by_suffix not in (None, fmt):
        raise ZooError(
            f"--output {out.name} ends in {out.suffix}, the {by_suffix} format, but --format is {fmt}: "
            f"drop --format or end --output in {FORMATS[fmt]}"
        )
    if out.suffix != FORMATS[fmt]:
        others = " or ".join(suffix for suffix in FORMATS.values() if suffix != FORMATS[fmt])
        hint = f" (or in {others} for those formats)" if by_suffix is None and fmt == "safetensors" else ""
        raise ZooError(f"--output must end in {FORMATS[fmt]}, not '{out.suffix}'{hint}")
    return fmt


def save_network(
    model: nn.Module, out: Path, fmt: str, *, input_size: Sequence[int], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """Write a network, in eval mode, to the new file ``out`` in ``fmt``.

    Args:
        model: an ``nn.Module`` taking images ``(B, *input_size)`` to one tensor (the logits); it is put in
            eval mode.
        out: the file to write; it must not exist.
        fmt: a key of :data:`FORMATS`.
        input_size: ``(C, H, W)`` of the images the ONNX graph or exported program takes (at any batch size).
        metadata: string pairs the file carries.

    Returns:
        ``sha256`` of the file and ``difference``, the largest absolute difference between the file's outputs
        and PyTorch's on a batch of 3 random images (None for safetensors, which holds the tensors themselves).

    Raises:
        ZooError: ``out`` exists, the network cannot take such images or cannot be exported, or the exported
            graph computes something else (then nothing is written).
    """
    import torch

    if out.exists():
        raise ZooError(f"{out} already exists; choose another --output or delete it")
    model.eval()
    difference = None
    if fmt == "safetensors":
        from safetensors.torch import save

        data = save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata=dict(metadata))
    else:
        example, check = _images(2, input_size, seed=0), _images(3, input_size, seed=1)
        with torch.no_grad():
            try:
                expected = model(check)
            except RuntimeError as error:
                size = "x".join(map(str, input_size))
                message = f"the network cannot take {size} images (--input_size C H W): {_first(error)}"
                raise ZooError(message) from error
        if not isinstance(expected, torch.Tensor):
            raise ZooError(f"only a network that returns one tensor can be exported as {fmt}")
        try:
            data = _onnx(model, example, metadata) if fmt == "onnx" else _program(model, example, metadata)
        except Exception as error:  # an operation the exporter does not know: the user's choice of format
            raise ZooError(f"the network cannot be exported as {fmt}: {_first(error)}") from error
        difference = _check(data, fmt, check, expected)
    _write_new(out, data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "difference": difference}


def export(
    checkpoint: Path, out: Path, fmt: str | None = None, input_size: Sequence[int] | None = None
) -> dict[str, Any]:
    """Write the network of a zoo checkpoint to ``out``.

    Args:
        checkpoint: A checkpoint written by ``zoo fit`` (its run folder's ``metrics.json``, when present, gives
            the test metrics; its ``config.yaml`` the class names).
        out: The file to write; it must not exist.
        fmt: A key of :data:`FORMATS`; None takes it from the suffix of ``out`` (see :func:`output_format`).
        input_size: ``(C, H, W)`` of the images an ONNX graph or exported program takes; None: see
            :func:`zoo.models.summary.default_input_size`.

    Returns:
        The metadata written, plus ``sha256`` of the file, ``format``, ``input_size`` and ``difference`` (see
        :func:`save_network`).

    Raises:
        ZooError: The checkpoint is missing or not a zoo checkpoint, ``out`` exists or has the wrong suffix, the
            onnx packages are missing, or the network cannot be exported.
    """
    import torch

    from zoo.models import create_model
    from zoo.models.summary import default_input_size
    from zoo.models.weights import find_weights

    fmt = output_format(out, fmt)
    if out.exists():
        raise ZooError(f"{out} already exists; choose another --output or delete it")
    if fmt == "safetensors" and input_size is not None:
        raise ZooError(
            "--input_size is for onnx and exported_program files; safetensors holds the weights only"
        )
    if fmt == "onnx":
        _require_onnx()
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model = str(saved["hyper_parameters"]["model"])
    except FileNotFoundError:
        raise ZooError(f"checkpoint {checkpoint} does not exist") from None
    except Exception as error:  # refused unpickling, not a zoo checkpoint
        raise ZooError(f"{checkpoint} is not a zoo checkpoint that can be read safely: {error}") from None
    weights = find_weights(model, str(checkpoint.resolve()))  # a WeightsError is a ZooError
    network = create_model(model, weights=str(checkpoint.resolve()))
    metrics_file = checkpoint.parent / "metrics.json"
    test = json.loads(metrics_file.read_text()).get("test", {}) if metrics_file.is_file() else {}
    metadata = {
        "model": model,
        "num_classes": str(weights.num_classes),
        "in_channels": str(weights.in_channels),
        "model_kwargs": json.dumps(dict(weights.model_kwargs), sort_keys=True),
        "metrics": json.dumps({k: v for k, v in test.items() if "/" not in k}, sort_keys=True),
        "source": str(checkpoint),
    }
    categories = _categories(saved.get(CLASSES_KEY), checkpoint, weights.num_classes)
    if categories is not None:
        metadata["categories"] = json.dumps(categories)
    size = tuple(input_size or default_input_size(weights.in_channels, weights.model_kwargs))
    info = save_network(network, out, fmt, input_size=size, metadata=metadata)
    return {**metadata, **info, "format": fmt, "input_size": size}


def _images(batch: int, input_size: Sequence[int], *, seed: int) -> Tensor:
    import torch

    return torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))


def _first(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _onnx(model: nn.Module, example: Tensor, metadata: Mapping[str, str]) -> bytes:
    import onnx
    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.onnx"
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
            opset_version=20,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
        graph = onnx.load(path)
    onnx.helper.set_model_props(graph, dict(metadata))
    return bytes(graph.SerializeToString())


def _program(model: nn.Module, example: Tensor, metadata: Mapping[str, str]) -> bytes:
    import torch

    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    for node in program.graph.nodes:  # the exporting machine's source paths and lines: no part of the network
        node.meta.pop("stack_trace", None)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={PROGRAM_METADATA: json.dumps(dict(metadata))})
    return buffer.getvalue()


def _check(data: bytes, fmt: str, images: Tensor, expected: Tensor) -> float:
    """The largest difference between what the file computes and ``expected``; refuse a file that computes
    something else."""
    import torch

    with torch.no_grad():
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        else:
            got = torch.export.load(io.BytesIO(data)).module()(images)
    if got.shape != expected.shape:
        raise ZooError(
            f"the {fmt} file would give outputs of shape {tuple(got.shape)}, not {tuple(expected.shape)}; "
            "nothing was written"
        )
    difference = float((got - expected).abs().max())
    if not torch.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
        raise ZooError(
            f"the {fmt} file would compute something else than the network: its outputs differ by up to "
            f"{difference:.2g}; nothing was written"
        )
    return difference


def _write_new(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out``, which must not exist, not even when it appears during the export."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        file = out.open("xb")  # exclusive creation; closed below
    except FileExistsError:
        raise ZooError(f"{out} already exists; choose another --output or delete it") from None
    try:
        with file:
            file.write(data)
    except BaseException:
        out.unlink(missing_ok=True)  # ours, half-written
        raise


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ZooError(f"--format onnx needs the onnx and onnxruntime packages: {_INSTALL_ONNX}") from None


def _categories(carried: Any, checkpoint: Path, num_classes: int) -> list[str] | None:
    """The class names in label order: the checkpoint's own, else its run's DataModule's; None when unknown or
    when they are not one per output."""
    names = list(carried) if isinstance(carried, list | tuple) else _data_classes(checkpoint)
    if not names or len(names) != num_classes:
        return None
    return [str(name) for name in names]


def _data_classes(checkpoint: Path) -> list[str] | None:
    """The classes of the DataModule that the ``config.yaml`` of the checkpoint's run folder configures."""
    from zoo.data import ZooDataModule

    config_file = run_config_of(checkpoint)
    if config_file is None:
        return None
    config = read_recipe(config_file)
    class_path, init_args = lookup(config, "data.class_path")[1], lookup(config, "data.init_args")[1]
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        data_class = getattr(importlib.import_module(module), name)
        if not (isinstance(data_class, type) and issubclass(data_class, ZooDataModule)):
            return None
        # constructing a DataModule reads no data; its classes are declared, or listed from a folder of files
        return list(data_class(**(init_args or {})).classes)
    except (ImportError, AttributeError, TypeError, ValueError, OSError, NotImplementedError, ZooError):
        return None  # the names are a convenience: a run whose data is gone exports without them


def _run(argv: list[str]) -> None:
    parser = CommandParser(
        "zoo export",
        usage=(
            "zoo export --ckpt_path CKPT --output FILE.safetensors|FILE.onnx|FILE.pt2 "
            "[--format safetensors|onnx|exported_program] [--input_size C H W]"
        ),
        description="A trained network as a file to ship: its weights (safetensors), an ONNX graph or a "
        "torch.export program, with its model name, classes and metrics.",
    )
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zoo fit")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the file to write (must not exist); its suffix names a format",
    )
    parser.add_argument(
        "--format", choices=list(FORMATS), help="default: the format of the --output suffix, else safetensors"
    )
    parser.add_argument(
        "--input_size",
        nargs=3,
        type=int,
        metavar=("C", "H", "W"),
        help="images the onnx or exported_program file takes, at any batch size (default: the image_size "
        "option, else 28x28 for one channel, 32x32 for a CIFAR head or stem, else 224x224)",
    )
    args = parser.parse_args(argv)
    info = export(args.ckpt_path, args.output, args.format, args.input_size)
    print(f"wrote {args.output} (sha256 {info['sha256']})")
    print(f"model {info['model']}, {info['num_classes']} classes, options {info['model_kwargs']}")
    print(f"categories {info.get('categories', 'unknown (not in the checkpoint, nor in its run config)')}")
    print(f"metrics {info['metrics']}")
    if info["difference"] is not None:
        c, h, w = info["input_size"]
        print(
            f"input (batch, {c}, {h}, {w}); outputs checked against PyTorch's on 3 random images: "
            f"largest difference {info['difference']:.2g}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run ``zoo export``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo export",
        list(sys.argv[1:] if argv is None else argv),
        ["--ckpt_path", "--output", "--input_size"],
    )
    return answer_bad_input("zoo export", lambda: _run(arguments))
