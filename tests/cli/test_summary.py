"""``zoo summary``: the Keras-style table, its figures, a recipe's network, old flag spellings and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zoo.cli.summary import main
from zoo.models import create_model
from zoo.models.summary import summarize


def test_keras_cnn_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keras_cnn"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    first_conv = next(line for line in lines if line.startswith("features.0 "))
    assert first_conv.split()[1:] == ["Conv2d", "26x26x32", "320", "3x3"]
    flatten = next(line for line in lines if "Flatten" in line)
    assert flatten.split()[1:] == ["Flatten", "800", "0", "all"]
    assert "Total params: 61,482" in lines


def test_rows_follow_the_forward_pass() -> None:
    rows = summarize(create_model("keras_cnn"), (1, 28, 28))
    assert [(r.kind, r.output_shape, r.params, r.receptive_field) for r in rows] == [
        ("Conv2d", (32, 26, 26), 320, 3),
        ("MaxPool2d", (32, 13, 13), 0, 4),
        ("Conv2d", (32, 11, 11), 9_248, 8),
        ("MaxPool2d", (32, 5, 5), 0, 10),
        ("Flatten", (800,), 0, None),
        ("Linear", (64,), 51_264, None),
        ("Linear", (10,), 650, None),
    ]
    assert sum(r.params for r in rows) == 61_482


def test_receptive_field_of_vgg16_and_of_a_residual_network() -> None:
    rows = summarize(create_model("vgg16", num_classes=10, head="cifar"), (3, 32, 32))
    assert [r.receptive_field for r in rows if r.kind == "MaxPool2d"] == [
        6,
        16,
        44,
        100,
        212,
    ]  # the known VGG-16 figures
    rows = summarize(create_model("resnet20"), (3, 32, 32))
    convs = [r for r in rows if r.kind == "Conv2d"]
    # 19 3x3 convolutions in a chain: the stem, 6 and the first strided one see through jump 1, the next
    # 5 and the second strided one through jump 2, the last 5 through jump 4; shortcuts add no width
    assert convs[-1].receptive_field == 3 + 7 * 2 * 1 + 6 * 2 * 2 + 5 * 2 * 4
    assert sum(r.params for r in rows) == sum(p.numel() for p in create_model("resnet20").parameters())


def test_batch_norm_and_branches_are_counted_once() -> None:
    model = create_model("googlenet", num_classes=10, stem="cifar")
    rows = summarize(model, (3, 32, 32))
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert len({r.name for r in rows}) == len(rows)


def test_options_and_input_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["vgg16_bn", "--input_size", "3", "32", "32", "--num_classes", "10", "--option", "head=cifar"])
        == 0
    )
    assert "Total params: 14,728,266" in capsys.readouterr().out


def summarised_here(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``zoo summary ARGV`` in this process: its exit status and what it wrote to stderr."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as stop:  # the option parser's own refusals
        status = stop.code if isinstance(stop.code, int) else 1
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lenet"], "unknown model 'lenet' (did you mean: lenet5, "),
        (["vgg16", "--input_size", "3", "8", "8"], "vgg16 cannot take a 8x8x3 input"),
        (["vgg16", "--option", "head=coco"], "head must be 'imagenet' or 'cifar'"),
        (["lenet5", "--option", "colour=3"], "lenet5 has no option colour; it takes activation"),
        (["lenet5", "--input_size", "1", "0", "28"], "must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv == ["lenet"]:  # as a user runs it, in a process of its own
        result = subprocess.run(
            [sys.executable, "-m", "zoo.summary", *argv], capture_output=True, text=True, check=False
        )
        status, err = result.returncode, result.stderr
    else:  # the same entry point, several seconds quicker
        status, err = summarised_here(argv, capsys)
    assert status == 2
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err


def test_bad_option_syntax_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, err = summarised_here(["lenet5", "--option", "x"], capsys)
    assert status == 2 and "expects KEY=VALUE" in err


def test_a_recipe_is_summarised_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--recipe", "vgg16_cifar"]) == 0  # head=cifar from the recipe: a 32x32 input
    out = capsys.readouterr().out
    assert out.startswith("vgg16_bn: input 32x32x3") and "Total params: 14,728,266" in out
    assert main(["--recipe", "lenet5_fashionmnist"]) == 0  # image_size 28 from the recipe
    assert capsys.readouterr().out.startswith("lenet5: input 28x28x1")


def test_old_flag_spellings_still_work_with_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["vgg16_bn", "--input-size", "3", "32", "32", "--num-classes", "10", "--option", "head=cifar"])
        == 0
    )
    captured = capsys.readouterr()
    assert "Total params: 14,728,266" in captured.out
    notices = captured.err.strip().splitlines()
    assert notices == [
        "zoo summary: --input-size is deprecated, use --input_size (the old spelling goes in the next release)",
        "zoo summary: --num-classes is deprecated, use --num_classes (the old spelling goes in the next release)",
    ]
