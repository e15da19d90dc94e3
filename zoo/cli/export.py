"""``zoo export``: a trained network's weights as a safetensors file, ready to ship or share.

The file holds the network's tensors only (no optimiser state, no pickled objects) and, in its metadata,
the model name, its classes and channels, its builder options and the test metrics its run reached. The
command prints the file's SHA-256 and the :class:`zoo.models.Weights` record that declares it::

    zoo export --ckpt_path runs/lenet5_fashionmnist/20261121-100000/best.ckpt \\
        --output zoo/models/weights/lenet5_fashionmnist.safetensors
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from zoo.cli.errors import answer_bad_input
from zoo.cli.flags import CommandParser, renamed
from zoo.errors import ZooError

__all__ = ["export", "main"]


def export(checkpoint: Path, out: Path) -> dict[str, Any]:
    """Write the network of a zoo checkpoint to ``out`` as safetensors.

    Args:
        checkpoint: A checkpoint written by ``zoo fit`` (its run folder's ``metrics.json``, when
            present, gives the test metrics).
        out: The ``.safetensors`` file to write; it must not exist.

    Returns:
        The metadata written, plus ``sha256`` of the file.

    Raises:
        ZooError: The checkpoint is missing or not a zoo checkpoint, or ``out`` exists.
    """
    import torch
    from safetensors.torch import save_file

    from zoo.models.weights import find_weights, read_weights
    from zoo.models.weights_files import WeightsError

    if out.exists():
        raise ZooError(f"{out} already exists; choose another --output or delete it")
    if out.suffix != ".safetensors":
        raise ZooError(f"--output must end in .safetensors, not '{out.suffix}'")
    try:
        hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
        model = str(hparams["model"])
    except FileNotFoundError:
        raise ZooError(f"checkpoint {checkpoint} does not exist") from None
    except Exception as error:  # refused unpickling, not a zoo checkpoint
        raise ZooError(f"{checkpoint} is not a zoo checkpoint that can be read safely: {error}") from None
    try:
        weights = find_weights(model, str(checkpoint))
        tensors = {k: v.contiguous() for k, v in read_weights(weights).items()}
    except WeightsError as error:
        raise ZooError(str(error)) from None
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
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    return {**metadata, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def _run(argv: list[str]) -> None:
    parser = CommandParser(
        "zoo export",
        usage="zoo export --ckpt_path CKPT --output FILE.safetensors",
        description="A trained network's weights as a safetensors file, with its model name, classes and metrics.",
    )
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zoo fit")
    parser.add_argument(
        "--output", type=Path, required=True, help="the .safetensors file to write (must not exist)"
    )
    args = parser.parse_args(argv)
    info = export(args.ckpt_path, args.output)
    print(f"wrote {args.output} (sha256 {info['sha256']})")
    print(f"model {info['model']}, {info['num_classes']} classes, options {info['model_kwargs']}")
    print(f"metrics {info['metrics']}")


def main(argv: list[str] | None = None) -> int:
    """Run ``zoo export``; returns the exit status (2 for bad input, with one line on stderr)."""
    arguments = renamed(
        "zoo export", list(sys.argv[1:] if argv is None else argv), ["--ckpt_path", "--output"]
    )
    return answer_bad_input("zoo export", lambda: _run(arguments))
