"""Weights files: where they are kept, downloading them once, checking their SHA-256, reading them safely.

:mod:`zoo.models.weights` says which file a set of weights is; this module gets that file onto this machine
and reads it. Files come from the wheel (``file``, under :data:`SHIPPED`) or from a download address (``url``),
downloaded once into torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps the same files)
and checked against their SHA-256 every time they are loaded. Reading never unpickles code:
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.errors import ZooError
from zoo.files import replaced

__all__ = [
    "SHIPPED",
    "StateDict",
    "WeightsError",
    "download_artifact",
    "fetch",
    "local_path",
    "read_export_metadata",
    "read_state_dict",
    "split_sha256",
    "weights_dir",
]

StateDict = dict[str, Tensor]

#: Where the weights that ship in the wheel lie.
SHIPPED = Path(__file__).parent / "weights"


class WeightsError(ZooError):
    """A weights file could not be had, failed its hash check or does not fit the network."""


def weights_dir() -> Path:
    """Where downloaded weights are kept: ``$ZOO_WEIGHTS_DIR``, else torch's hub cache (shared with torchvision)."""
    if "ZOO_WEIGHTS_DIR" in os.environ:
        return Path(os.environ["ZOO_WEIGHTS_DIR"])
    return Path(torch.hub.get_dir()) / "checkpoints"


def local_path(*, url: str | None = None, file: str | None = None) -> Path:
    """Where a weights file is on this machine, or will be once downloaded.

    Args:
        url: The download address; the file keeps its name in :func:`weights_dir`.
        file: A path relative to :data:`SHIPPED` (an absolute path, a checkpoint's, stays as it is).
    """
    if file is not None:
        return SHIPPED / file
    assert url is not None
    return weights_dir() / Path(urllib.parse.urlparse(url).path).name


def fetch(name: str, sha256: str, *, url: str | None = None, file: str | None = None) -> Path:
    """The local, hash-checked weights file, downloading it first when needed.

    Args:
        name: The weights' ``model.tag``, for messages.
        sha256: Hex SHA-256 of the file or its leading digits; ``""`` checks nothing (a run's own checkpoint).
        url: The download address, for weights not in the wheel.
        file: The shipped file (or a checkpoint's absolute path).

    Raises:
        WeightsError: The file is missing, cannot be downloaded or fails its hash check.
    """
    path = local_path(url=url, file=file)
    if file is not None:
        if not path.is_file():
            raise WeightsError(f"weights '{name}' should be at {path}, which is missing")
        shipped = not Path(file).is_absolute()  # an absolute path is the user's own file
        _check_hash(path, sha256, "reinstall zoo" if shipped else "get the file again")
        return path
    assert url is not None
    if path.is_file():
        _check_hash(path, sha256, "delete it to download it again")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as partial:  # only a checked file ever gets the final name
        try:
            torch.hub.download_url_to_file(url, str(partial), progress=True)
        except (OSError, ValueError) as error:  # URLError is an OSError
            raise WeightsError(
                f"cannot download weights '{name}' from {url} ({error}); with no network, copy that file to {path}"
            ) from None
        _check_hash(partial, sha256, "the download was discarded")
    return path


def _check_hash(path: Path, sha256: str, advice: str) -> None:
    if not sha256:  # a run's own checkpoint: no published hash to hold it to
        return
    digest = _sha256(path)
    if not digest.startswith(sha256):
        raise WeightsError(
            f"weights file {path} has SHA-256 {digest[: len(sha256)]}..., expected "
            f"{sha256}...: it is corrupt or not the published file ({advice})"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: Path, name: str) -> StateDict:
    """Read a state dict of tensors, refusing pickled code (``weights_only=True``) and other contents.

    Args:
        path: A ``.safetensors``, ``.pth`` or zoo ``.ckpt`` file (whose ``state_dict`` is taken).
        name: The weights' ``model.tag``, for messages.

    Raises:
        WeightsError: The file cannot be read safely or holds something other than a state dict of tensors.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if path.suffix == ".ckpt" and isinstance(state, dict):
                state = state.get("state_dict")
    except Exception as error:  # unpickling errors come in many types; all mean "not a plain state dict"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"weights file {path} for '{name}' cannot be read safely: {reason}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} for '{name}' is not a state dict of tensors")
    return state


@functools.cache  # once per process: create_model and the builder both resolve the same reference
def download_artifact(name: str) -> Path:
    """Download a W&B model artifact and return the checkpoint in it.

    Args:
        name: The artifact, ``ENTITY/PROJECT/NAME:VERSION``.

    Raises:
        WeightsError: The artifact cannot be fetched or holds no ``.ckpt`` file.
    """
    try:
        import wandb

        artifact = wandb.Api().artifact(name, type="model")
        folder = Path(
            artifact.download(root=str(weights_dir() / "wandb" / name.replace("/", "_").replace(":", "-")))
        )
    except Exception as error:  # the W&B client raises many types (no login, no network, no such artifact)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"cannot fetch W&B artifact '{name}': {reason}") from None
    checkpoints = sorted(folder.rglob("*.ckpt"))
    if not checkpoints:
        raise WeightsError(f"W&B artifact '{name}' holds no .ckpt file")
    return checkpoints[0]


#: How a reference to a weights file carries its hash: ``model.safetensors#sha256=<hex>``.
HASH_SUFFIX = "#sha256="


def split_sha256(reference: str) -> tuple[Path, str]:
    """The file a reference names and the SHA-256 it must have (``""``: none given).

    The hash comes from a ``#sha256=<hex>`` suffix or from a ``FILE.sha256`` file beside it (``sha256sum``'s
    output or the bare digest); when both are given they must agree.

    Raises:
        WeightsError: A hash that is not hexadecimal, or two that disagree.
    """
    path_text, _, suffix = reference.partition(HASH_SUFFIX)
    path = Path(path_text)
    given: dict[str, str] = {}
    if suffix:
        given[f"{HASH_SUFFIX}{suffix}"] = suffix
    side = path.with_name(path.name + ".sha256")
    if side.is_file():
        words = side.read_text(errors="replace").split()
        given[str(side)] = words[0] if words else ""
    for where, digest in given.items():
        if not 8 <= len(digest) <= 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise WeightsError(f"{where} is not a SHA-256 (8 to 64 hex digits) for {path}")
    digests = {d.lower() for d in given.values()}
    if len(digests) > 1 and not all(a.startswith(b) or b.startswith(a) for a in digests for b in digests):
        raise WeightsError(f"the hashes given for {path} disagree: {', '.join(sorted(given))}")
    return path, max(digests, key=len, default="")


def read_export_metadata(path: Path) -> dict[str, str]:
    """The metadata ``zoo export`` wrote in a safetensors file's header (the tensors are not read).

    Raises:
        WeightsError: The file is missing, is not safetensors, or carries no zoo metadata.
    """
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for a bad header
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"{path} is not a safetensors file that can be read: {reason}") from None
    missing = [key for key in ("model", "num_classes", "in_channels") if key not in metadata]
    if missing:
        raise WeightsError(
            f"{path} has no zoo metadata ({', '.join(missing)} missing): it was not written by zoo export, "
            "its model and classes are unknown (read it with safetensors.torch.load_file)"
        )
    return dict(metadata)
