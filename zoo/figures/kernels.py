"""What a convolution does: hand-designed kernels applied to a grey photo, three ways of handling its edges, and
max pooling, as in the first lessons on CNNs (Udacity's "filters" lesson) before any network is trained.

The kernels are applied as a convolution layer applies its weights (``F.conv2d``: a cross-correlation, the kernel
is not flipped), so Sobel x is positive where the image gets brighter to the right. The edges of the image are
handled in one of three ways:

- ``extend``: the border pixels are repeated outwards (replicate padding); the output has the image's size;
- ``zero``: the image is surrounded by zeros (black), as ``nn.Conv2d(padding=k // 2)`` does; same size, but a
  bright image seems to end in an edge, which derivative kernels find all around the frame;
- ``crop``: only positions where the whole kernel lies on the image (a "valid" convolution, ``padding=0``); the
  output loses ``k // 2`` pixels on every side, ``(H - k + 1, W - k + 1)``.

The figures reuse :mod:`zoo.figures.drawing`'s captioned grids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from zoo.errors import ZooError
from zoo.figures.drawing import captioned_grid, letterbox, resize_image, to_tiles

__all__ = [
    "EDGES",
    "KERNELS",
    "POOLED",
    "SHOWN",
    "TILE_SIDE",
    "ZOOM",
    "Edge",
    "apply_kernel",
    "corner_figure",
    "kernel_figure",
    "max_pool",
    "maxpool_figure",
    "parse_kernel",
    "to_grey",
]

Edge = Literal["extend", "zero", "crop"]
#: the edge handlings, in the figures' column order
EDGES: tuple[Edge, ...] = get_args(Edge)
_EDGE_CAPTION = {"extend": "extend", "zero": "zero pad", "crop": "crop"}

#: the hand-designed kernels, in the figures' row order
KERNELS: dict[str, Tensor] = {
    # brightness rising to the right (x) or downwards (y)
    "sobel x": torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel y": torch.tensor([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]),
    # the 8-neighbour Laplacian: the 4-neighbour one is the high-pass below with its sign flipped
    "laplacian": torch.tensor([[1.0, 1, 1], [1, -8, 1], [1, 1, 1]]),
    "high-pass": torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]),
    "blur": torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,  # 3x3 binomial (Gaussian)
}
#: the kernel whose output, after a ReLU, is max-pooled in :func:`maxpool_figure`
POOLED = "sobel x"
#: side in pixels of every tile
TILE_SIDE = 128
#: pixels of the input shown, enlarged, in the zoomed tiles (a divisor of TILE_SIDE keeps pixels square)
ZOOM = 16
#: share of a filtered image's pixels shown unclipped: a few extreme pixels would otherwise make the rest grey
SHOWN = 0.99
_MISSING = (0.55, 0.75, 1.0)  # light blue: where a cropped output has no pixel


def to_grey(image: Tensor) -> Tensor:
    """A ``uint8`` RGB image ``(3, H, W)`` as grey ``(H, W)`` floats in 0..1 (ITU-R 601 luma, as PIL's "L")."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (image.float() * weights).sum(dim=0) / 255


def parse_kernel(text: str) -> Tensor:
    """A square kernel of odd side from text: numbers separated by ``,``, rows by ``;`` (``0,-1,0;-1,5,-1;0,-1,0``).

    Raises:
        ZooError: a value is not a finite number, the rows differ in length, or the kernel is not square with an
            odd side (it needs a centre pixel).
    """
    example = "write rows of numbers separated by ';', for example 0,-1,0;-1,5,-1;0,-1,0"
    rows: list[list[float]] = []
    for row in text.split(";"):
        values: list[float] = []
        for value in row.split(","):
            try:
                number = float(value)
            except ValueError:
                raise ZooError(f"kernel '{text}': '{value.strip()}' is not a number; {example}") from None
            if not math.isfinite(number):
                raise ZooError(f"kernel '{text}': '{value.strip()}' is not a finite number")
            values.append(number)
        rows.append(values)
    if any(len(row) != len(rows) for row in rows):
        lengths = ", ".join(str(len(row)) for row in rows)
        raise ZooError(
            f"kernel '{text}': {len(rows)} rows of {lengths} numbers; a kernel is square, {example}"
        )
    if len(rows) % 2 == 0:
        raise ZooError(f"kernel '{text}': a {len(rows)}x{len(rows)} kernel has no centre; give an odd side")
    return torch.tensor(rows)


def apply_kernel(image: Tensor, kernel: Tensor, edge: Edge) -> Tensor:
    """Convolve a grey image with a kernel, as a convolution layer does (the kernel is not flipped).

    Args:
        image: float ``(H, W)``.
        kernel: ``(k, k)`` with ``k`` odd.
        edge: ``extend`` (replicate padding), ``zero`` (zero padding) or ``crop`` (no padding).

    Returns:
        ``(H, W)`` for ``extend`` and ``zero``; ``(H - k + 1, W - k + 1)`` for ``crop``.

    Raises:
        ZooError: the image is smaller than the kernel.
    """
    side = kernel.shape[-1]
    if kernel.ndim != 2 or kernel.shape[0] != side or side % 2 == 0:
        raise ValueError(f"the kernel must be square with an odd side, not {tuple(kernel.shape)}")
    if edge not in EDGES:
        raise ValueError(f"edge must be one of {', '.join(EDGES)}, not {edge!r}")
    height, width = image.shape
    if height < side or width < side:
        raise ZooError(f"a {side}x{side} kernel does not fit in a {height}x{width} image")
    batch, weight, half = image.float()[None, None], kernel.float()[None, None], side // 2
    if edge == "extend":
        batch = F.pad(batch, (half,) * 4, mode="replicate")
    elif edge == "zero":
        batch = F.pad(batch, (half,) * 4, mode="constant", value=0.0)
    return F.conv2d(batch, weight)[0, 0]


def max_pool(image: Tensor, size: int = 2, stride: int = 2) -> Tensor:
    """The largest value of each ``size x size`` window, windows ``stride`` apart: ``(H, W)`` to
    ``((H - size) // stride + 1, (W - size) // stride + 1)`` (a last row or column that fills no window is
    dropped, as ``nn.MaxPool2d`` does).

    Raises:
        ZooError: the image is smaller than one window.
    """
    if min(image.shape) < size:
        raise ZooError(f"a {tuple(image.shape)} image is smaller than one {size}x{size} pooling window")
    return F.max_pool2d(image.float()[None, None], size, stride)[0, 0]


# ---- figures ---------------------------------------------------------------------------------------------------


def _shown(kernel: Tensor, reference: Tensor) -> tuple[float, float]:
    """``(offset, scale)`` bringing outputs of ``kernel`` into 0..1 as ``offset + value * scale``.

    A kernel whose weights sum to zero (a derivative, a high-pass) answers around zero: zero is mid-grey, and
    black and white are minus and plus the :data:`SHOWN` quantile of the magnitudes in ``reference`` (its
    ``extend`` output, free of invented edges). Other kernels (a blur, a sharpen) give a picture: 0 is black and 1
    (the brightest input) white. Beyond is clipped.
    """
    if abs(float(kernel.sum())) > 1e-6:
        return 0.0, 1.0
    return 0.5, 0.5 / _quantile(reference.abs())


def _quantile(values: Tensor) -> float:
    """The :data:`SHOWN` quantile of ``values`` (at least a tiny positive number, to divide by)."""
    flat = values.flatten()
    rank = min(len(flat), max(1, math.ceil(SHOWN * len(flat))))
    return max(float(flat.kthvalue(rank).values), 1e-12)


def _whole(picture: Tensor) -> Tensor:
    """A picture ``(C, H, W)`` in 0..1 as a ``uint8`` tile ``(3, TILE_SIDE, TILE_SIDE)``, aspect ratio kept."""
    pixels = (picture.clamp(0, 1) * 255).round().to(torch.uint8).expand(3, -1, -1)
    return letterbox(resize_image(pixels, TILE_SIDE / max(picture.shape[-2:])), TILE_SIDE)


def _size(image: Tensor) -> str:
    return f"{image.shape[-2]}x{image.shape[-1]}"


def kernel_figure(grey: Tensor, kernels: Mapping[str, Tensor]) -> Image.Image:
    """One row per kernel, one column per edge handling (extend, zero pad, crop), each tile the whole output.

    Args:
        grey: float ``(H, W)`` in 0..1.
        kernels: name to ``(k, k)`` kernel.

    Returns:
        A captioned grid (kernel and edge handling; output height x width) of :data:`TILE_SIDE` px tiles.
    """
    tiles, captions = [], []
    for name, kernel in kernels.items():
        outputs = {edge: apply_kernel(grey, kernel, edge) for edge in EDGES}
        offset, scale = _shown(kernel, outputs["extend"])
        for edge, output in outputs.items():
            tiles.append(_whole((offset + output * scale)[None]))
            captions.append((name, f"{_EDGE_CAPTION[edge]}: {_size(output)}"))
    return captioned_grid(torch.stack(tiles), captions, len(EDGES))


def corner_figure(grey: Tensor, kernels: Mapping[str, Tensor]) -> Image.Image:
    """:func:`kernel_figure`'s outputs, only their top-left :data:`ZOOM` x :data:`ZOOM` input pixels, enlarged,
    where the edge handlings differ; a cropped output, which has no pixel within ``k // 2`` of the border, is
    aligned with the others and its missing pixels are light blue."""
    side = min(ZOOM, *grey.shape)
    tiles, captions = [], []
    for name, kernel in kernels.items():
        half = kernel.shape[-1] // 2
        outputs = {edge: apply_kernel(grey, kernel, edge) for edge in EDGES}
        offset, scale = _shown(kernel, outputs["extend"])
        for edge, output in outputs.items():
            corner = torch.tensor(_MISSING).view(3, 1, 1).repeat(1, side, side)
            shift = half if edge == "crop" else 0
            values = (offset + output[: side - shift, : side - shift] * scale).clamp(0, 1)
            corner[:, shift:, shift:] = values
            tiles.append(to_tiles(corner[None], TILE_SIDE)[0])
            captions.append((name, f"{_EDGE_CAPTION[edge]}: corner {side}x{side}"))
    return captioned_grid(torch.stack(tiles), captions, len(EDGES))


def maxpool_figure(grey: Tensor, kernel: Tensor = KERNELS[POOLED], name: str = POOLED) -> Image.Image:
    """What a convolution layer's usual next steps do: ``relu(kernel * grey)`` (extend) max-pooled 2x2, stride 2,
    both shown with 0 black and the :data:`SHOWN` quantile of the ReLU output white (in the zoom, its largest
    value white).

    Two rows of three tiles: the grey image, the ReLU of the filtered image and its max pool, whole; then the
    :data:`ZOOM` x :data:`ZOOM` window (at even coordinates) where the ReLU output is largest, enlarged, next to
    the ``ZOOM / 2`` pooled pixels that summarise it: each 2x2 block becomes its brightest pixel.
    """
    relu = apply_kernel(grey, kernel, "extend").clamp_min(0)
    pooled = max_pool(relu)
    scale = 1 / _quantile(relu)
    side = min(ZOOM, grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2)
    sums = F.avg_pool2d(relu[None, None], side, stride=2)[0, 0]
    row, col = divmod(int(sums.argmax()), sums.shape[1])
    top, left = 2 * row, 2 * col
    window = (slice(top, top + side), slice(left, left + side))
    pooled_window = (slice(row, row + side // 2), slice(col, col + side // 2))
    tiles = [_whole(grey[None]), _whole(relu[None] * scale), _whole(pooled[None] * scale)]
    zoom_scale = 1 / max(float(relu[window].max()), 1e-12)  # the window's brightest pixel white: none clipped
    zooms = [grey[window], relu[window] * zoom_scale, pooled[pooled_window] * zoom_scale]
    tiles += [to_tiles(zoom.clamp(0, 1)[None, None], TILE_SIDE)[0] for zoom in zooms]
    captions = [
        ("grey input", _size(grey)),
        (f"relu({name})", f"extend: {_size(relu)}"),
        ("max pool 2x2, stride 2", _size(pooled)),
        ("zoom", f"from row {top}, col {left}"),
        (f"relu({name})", f"{side}x{side} pixels"),
        ("max pool", f"{side // 2}x{side // 2}: max of each 2x2"),
    ]
    return captioned_grid(torch.stack(tiles), captions, 3)
