"""``zoo visualize --what kernels``: hand-designed kernels on a photo, three edge handlings, and a max pool.

The convolution math is checked against values worked out by hand on tiny images; the command end to end on
images made here (every PIL mode, PNG and JPEG) and on a scikit-image picture. Figure sizes follow from
zoo.figures.drawing's layout: tiles of 128 px with 26 px of caption, 2 px between tiles, 3 tiles a row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from zoo.cli.visualize import main as visualize
from zoo.errors import ZooError
from zoo.figures.kernels import KERNELS, apply_kernel, corner_figure, max_pool, parse_kernel, to_grey

FILES = ("kernels.png", "kernels-corner.png", "kernels-maxpool.png")
WIDTH = 3 * 130 + 2  # three tiles of 128 px, 2 px between and around


def grid_height(rows: int) -> int:
    return rows * (128 + 26 + 2) + 2


# a 4x4 horizontal ramp, brightness rising to the right: every row is 1, 2, 3, 4
RAMP = torch.arange(1.0, 5.0).repeat(4, 1)


# ---- the math, by hand ---------------------------------------------------------------------------------------


def test_sobel_x_of_a_horizontal_ramp_with_each_edge_handling() -> None:
    sobel_x = KERNELS["sobel x"]
    # inside, (right - left) x (1 + 2 + 1) = (3 - 1) x 4 = 8 whatever the edge handling
    assert torch.equal(apply_kernel(RAMP, sobel_x, "crop"), torch.full((2, 2), 8.0))
    # extend: at the first column the left neighbour is the pixel itself, (2 - 1) x 4; likewise at the last
    assert torch.equal(apply_kernel(RAMP, sobel_x, "extend"), torch.tensor([[4.0, 8, 8, 4]]).repeat(4, 1))
    # zero: (2 - 0) x 4 at the first column, (0 - 3) x 4 at the last; the top and bottom rows lose the
    # neighbouring row above or below: weights 2 + 1 = 3 instead of 4
    inner, outer = [8.0, 8, 8, -12], [6.0, 6, 6, -9]
    assert torch.equal(apply_kernel(RAMP, sobel_x, "zero"), torch.tensor([outer, inner, inner, outer]))


def test_zero_padding_differs_from_extend_exactly_at_the_border() -> None:
    image = torch.rand(6, 7) + 0.5  # no zero pixel, so a zero neighbour always changes the sum
    border = torch.ones(6, 7, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    for name in ("sobel x", "sobel y", "laplacian", "blur"):
        extend = apply_kernel(image, KERNELS[name], "extend")
        zero = apply_kernel(image, KERNELS[name], "zero")
        assert torch.equal(~torch.isclose(extend, zero), border), name
        assert torch.allclose(extend[1:-1, 1:-1], apply_kernel(image, KERNELS[name], "crop")), name


def test_the_blur_of_a_constant_image_by_edge_handling() -> None:
    ones = torch.ones(3, 4)
    blur = KERNELS["blur"]  # 1 2 1 / 2 4 2 / 1 2 1, over 16
    assert torch.allclose(apply_kernel(ones, blur, "extend"), ones)
    assert torch.allclose(apply_kernel(ones, blur, "crop"), torch.ones(1, 2))
    corner, side, middle = 9 / 16, 12 / 16, 1.0  # 4+2+2+1, 4+2+2+2+1+1 and all 16 weights on the image
    expected = torch.tensor(
        [[corner, side, side, corner], [side, middle, middle, side], [corner, side, side, corner]]
    )
    assert torch.allclose(apply_kernel(ones, blur, "zero"), expected)


def test_kernels_are_applied_as_a_convolution_layer_applies_them_not_flipped() -> None:
    right = torch.zeros(3, 3)
    right[1, 2] = 1.0  # picks the right neighbour: the image moves one pixel left
    assert torch.equal(apply_kernel(RAMP, right, "extend"), torch.tensor([[2.0, 3, 4, 4]]).repeat(4, 1))
    assert torch.equal(apply_kernel(RAMP, right, "zero"), torch.tensor([[2.0, 3, 4, 0]]).repeat(4, 1))
    assert torch.equal(apply_kernel(RAMP, right, "crop"), torch.tensor([[3.0, 4]]).repeat(2, 1))


def test_crop_shrinks_by_the_kernel_size_and_refuses_a_kernel_larger_than_the_image() -> None:
    image = torch.rand(9, 12)
    assert apply_kernel(image, torch.ones(5, 5), "crop").shape == (5, 8)
    assert apply_kernel(image, torch.ones(5, 5), "zero").shape == (9, 12)
    with pytest.raises(ZooError, match="a 11x11 kernel does not fit in a 9x12 image"):
        apply_kernel(image, torch.ones(11, 11), "extend")


def test_max_pool_keeps_the_largest_of_each_2x2_block() -> None:
    image = torch.tensor([[1.0, 5, 2, 0], [3, 2, 7, 1], [0, -1, 4, 4], [-3, -2, 4, 9]])
    assert torch.equal(max_pool(image), torch.tensor([[5.0, 7], [0, 9]]))
    odd = torch.arange(25.0).view(5, 5)  # the last row and column fill no window: dropped
    assert torch.equal(max_pool(odd), torch.tensor([[6.0, 8], [16, 18]]))
    with pytest.raises(ZooError, match="smaller than one 2x2 pooling window"):
        max_pool(torch.ones(1, 5))


def test_parse_kernel_reads_rows_split_by_semicolons() -> None:
    sharpen = torch.tensor([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert torch.equal(parse_kernel("0,-1,0;-1,5,-1;0,-1,0"), sharpen)
    assert torch.equal(parse_kernel(" 0, -1, 0 ; -1, 5, -1 ; 0, -1, 0 "), sharpen)
    assert torch.equal(parse_kernel("2.5"), torch.tensor([[2.5]]))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0,-1,0;-1,5;0,-1,0", "3 rows of 3, 2, 3 numbers"),
        ("1,2;3,4", "a 2x2 kernel has no centre"),
        ("0,a,0;0,1,0;0,0,0", "'a' is not a number"),
        ("", "'' is not a number"),
        ("0,0,0;0,nan,0;0,0,0", "'nan' is not a finite number"),
    ],
    ids=["ragged", "even", "word", "empty", "nan"],
)
def test_parse_kernel_refuses_malformed_text(text: str, fragment: str) -> None:
    with pytest.raises(ZooError, match=f"kernel '{text}'") as caught:
        parse_kernel(text)
    assert fragment in str(caught.value)


def test_to_grey_weighs_the_channels_as_pil_does() -> None:
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]], dtype=torch.uint8)
    grey = to_grey(colours.T.reshape(3, 1, 4))
    assert torch.allclose(
        grey, torch.tensor([[0.299, 0.587, 0.114, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255]])
    )
    picture = Image.fromarray(colours.numpy().reshape(1, 4, 3), "RGB").convert("L")
    assert torch.allclose(
        grey * 255, torch.tensor(list(picture.getdata()), dtype=torch.float).view(1, 4), atol=0.5
    )


def test_the_corner_figure_marks_where_a_cropped_output_has_no_pixel() -> None:
    figure = corner_figure(torch.rand(20, 20), {"sobel x": KERNELS["sobel x"]}).convert("RGB")
    assert figure.size == (WIDTH, grid_height(1))
    # the third tile is crop's: its first input row and column (8 px each, enlarged) have no output
    crop_left = 2 + 2 * 130
    assert figure.getpixel((crop_left + 3, 2 + 60)) == (140, 191, 255)
    assert figure.getpixel((crop_left + 60, 2 + 3)) == (140, 191, 255)
    assert figure.getpixel((crop_left + 60, 2 + 60)) != (140, 191, 255)
    assert figure.getpixel((2 + 3, 2 + 60)) != (140, 191, 255)  # extend has every pixel


# ---- the command ---------------------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def photo(path: Path, mode: str) -> Path:
    """A 40 x 30 picture (light disc on a dark gradient) saved in ``mode`` at ``path``."""
    yy, xx = torch.meshgrid(torch.arange(30.0), torch.arange(40.0), indexing="ij")
    value = (xx * 3 + 40 + 120 * ((xx - 22) ** 2 + (yy - 14) ** 2 < 81)).clamp(0, 255).to(torch.uint8)
    rgb = Image.fromarray(torch.stack([value, value // 2, 255 - value], dim=-1).numpy(), "RGB")
    picture = rgb.quantize(16) if mode == "P" else rgb.convert(mode)
    picture.save(path)
    return path


def expected_sizes(kernels: int) -> dict[str, tuple[int, int]]:
    return {
        "kernels.png": (WIDTH, grid_height(kernels)),
        "kernels-corner.png": (WIDTH, grid_height(kernels)),
        "kernels-maxpool.png": (WIDTH, grid_height(2)),
    }


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("RGB", "png"), ("RGBA", "png"), ("L", "png"), ("P", "png"), ("RGB", "jpg"), ("L", "jpg")],
)
def test_kernels_draws_the_figures_from_a_photo(
    tmp_path: Path, mode: str, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = photo(tmp_path / f"photo.{suffix}", mode)
    out = tmp_path / "out"
    assert visualize(["--what", "kernels", "--image", str(source), "--output", str(out)]) == 0
    assert {p.name: image_size(p) for p in out.iterdir()} == expected_sizes(len(KERNELS))
    printed = capsys.readouterr().out
    assert printed.splitlines() == [f"wrote {out / name}" for name in FILES]


def test_kernels_on_a_scikit_image_picture_with_a_typed_kernel(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--what", "kernels", "--image", "skimage:astronaut", "--kernel", "0,-1,0;-1,5,-1;0,-1,0"]
    assert visualize([*args, "--output", str(out)]) == 0
    assert {p.name: image_size(p) for p in out.iterdir()} == expected_sizes(len(KERNELS) + 1)


def test_kernels_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kernels-maxpool.png").write_bytes(b"precious")
    args = ["--what", "kernels", "--image", str(photo(tmp_path / "photo.png", "RGB")), "--output", str(out)]
    assert visualize(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"zoo visualize: error: {out / 'kernels-maxpool.png'} exists; choose another")
    assert [p.name for p in out.iterdir()] == ["kernels-maxpool.png"]
    assert (out / "kernels-maxpool.png").read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--what", "kernels"], ["--what kernels needs --image"]),
        (["--what", "kernels", "--image", "{photo}", "--kernel", "1,2;3"], ["kernel '1,2;3'", "rows"]),
        (["--what", "kernels", "--image", "{broken}"], ["broken.png cannot be read as an image"]),
        (["--what", "kernels", "--image", "{missing}"], ["missing.png does not exist"]),
        (["--what", "kernels", "--image", "skimage:nope"], ["unknown scikit-image picture 'nope'"]),
        (["--what", "kernels", "--image", "{photo}", "--kernel", ";".join([",".join(["1"] * 31)] * 31)],
         ["a 31x31 kernel does not fit in a 30x40 image"]),
        (["--what", "kernels", "--image", "{photo}", "--data.root", "x"], ["unknown arguments: --data.root x"]),
        (["--what", "filters"], ["--what filters needs --ckpt_path"]),
    ],
    ids=["no-image", "kernel", "undecodable", "missing", "skimage", "too-large", "override", "no-ckpt"],
)  # fmt: skip
def test_kernels_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    places = {
        "{photo}": str(photo(tmp_path / "photo.png", "RGB")),
        "{broken}": str(tmp_path / "broken.png"),
        "{missing}": str(tmp_path / "missing.png"),
    }
    out = tmp_path / "out"
    assert visualize([places.get(a, a) for a in args] + ["--output", str(out)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("zoo visualize: error: "), captured.err
    for fragment in fragments:
        assert fragment in line
    assert not out.exists() and not captured.out
