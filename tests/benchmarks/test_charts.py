"""The benchmarks' charts: PNG and SVG files, text kept as text in the SVG, round tick values."""

from __future__ import annotations

import importlib
import json
import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from matplotlib.figure import Figure

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def scripts() -> Iterator[None]:
    """``benchmarks/`` on the path, as when a script runs from it: the scripts import ``charts`` by name."""
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))
    for name in ("charts", "degradation", "time_to_accuracy"):
        sys.modules.pop(name, None)


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def charts(scripts: None) -> ModuleType:
    return load("charts")


def made_up(charts: ModuleType) -> Figure:
    """Two curves and two points whose ends are not round: steps 13 to 863, errors 81.13% down to about 12%."""
    steps = [50 * i + 13 for i in range(18)]
    deep = [81.13 * 0.9**i for i in range(18)]
    shallow = [63.7 * 0.88**i + 5.04 for i in range(18)]
    return charts.line_chart(
        [
            charts.Series("deep, training", steps, deep),
            charts.Series("shallow, training", steps, shallow),
            charts.Series("deep, validation", [431, 863], [30.07, 25.31], line=False, marker="o"),
        ],
        title="made-up curves",
        x_label="optimiser step (batches)",
        y_label="training error (%)",
    )


def svg_text(path: Path) -> list[str]:
    """The text of every ``<text>`` element of an SVG file."""
    return [
        "".join(element.itertext()).strip()
        for element in ET.parse(path).iter("{http://www.w3.org/2000/svg}text")
    ]


def test_save_writes_a_png_and_an_svg_beside_it(charts: ModuleType, tmp_path: Path) -> None:
    png, svg = charts.save(made_up(charts), tmp_path / "charts" / "curves.png")
    assert (png, svg) == (tmp_path / "charts" / "curves.png", tmp_path / "charts" / "curves.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    charts.save(made_up(charts), tmp_path / "again.png")
    assert (tmp_path / "again.svg").read_bytes() == svg.read_bytes()  # no date or random ids: the same file


def test_svg_holds_the_title_legend_and_axis_labels_as_text(charts: ModuleType, tmp_path: Path) -> None:
    _, svg = charts.save(made_up(charts), tmp_path / "curves.png")
    text = svg_text(svg)
    for label in ("made-up curves", "optimiser step (batches)", "training error (%)"):
        assert label in text
    for label in ("deep, training", "shallow, training", "deep, validation"):
        assert label in text


def test_tick_labels_are_round_numbers_and_the_axes_end_on_ticks(charts: ModuleType) -> None:
    figure = made_up(charts)
    figure.canvas.draw()
    (axes,) = figure.axes
    for ticks, limits in (
        (axes.get_xticklabels(), axes.get_xlim()),
        (axes.get_yticklabels(), axes.get_ylim()),
    ):
        labels = [tick.get_text() for tick in ticks]
        values = [Decimal(label) for label in labels]  # raises on anything but a plain number
        assert len(values) >= 3, labels
        assert all(value.as_tuple().exponent >= -2 for value in values), labels  # at most 2 decimals
        (step,) = {values[i + 1] - values[i] for i in range(len(values) - 1)}  # evenly spaced
        assert step / Decimal(10) ** math.floor(math.log10(step)) in {1, 2, 5}, labels
        assert (float(values[0]), float(values[-1])) == limits, labels  # the axis ends on ticks
    assert axes.get_xlim()[0] == 0 and axes.get_ylim()[0] == 0


def degradation_results() -> dict[str, dict[str, object]]:
    """Made-up records of two networks, as ``degradation.py`` stores them: 10 steps of 128 images."""
    return {
        net: {
            "records": {
                "steps": list(range(1, 11)),
                "wrong": [100 - offset - 7 * i for i in range(10)],
                "seen": [128] * 10,
                "val": [[5, 0.4 - offset / 200], [10, 0.3 - offset / 200]],
            },
            "metrics": {"test": {"test_acc": 0.7 + offset / 200}, "global_step": 10, "fit_seconds": 3.2},
        }
        for net, offset in (("plain20", 20), ("plain56", 0))
    }


def test_degradation_redraws_its_chart_from_the_stored_numbers(
    scripts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    degradation = load("degradation")
    stored = tmp_path / "degradation.json"
    stored.write_text(json.dumps({"epochs": 1, "window": 2, "results": degradation_results()}))
    monkeypatch.setattr(
        sys, "argv", ["degradation.py", "--from_json", str(stored), "--output", str(tmp_path / "c.png")]
    )
    degradation.main()
    assert "| plain56 | 53.52% | 30.00% | 30.00% | 10 | 3 s |" in capsys.readouterr().out
    text = svg_text(tmp_path / "c.svg")
    for label in (
        "plain20, training",
        "plain56, training",
        "plain20, validation",
        "optimiser step (batches)",
        "error (%)",
    ):
        assert label in text
    assert (tmp_path / "c.png").exists()
    assert not (tmp_path / "c.json").exists()  # the numbers stay where they are stored


def test_degradation_draws_two_runs_in_one_chart_and_stores_their_numbers_together(
    scripts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    degradation = load("degradation")
    made = degradation_results()
    residual = {"resnet56": made["plain56"], "resnet20": made["plain20"]}
    runs = {"plain": ({"plain56": made["plain56"], "plain20": made["plain20"]}, "2026-12-01"),
            "resnets": (residual, "2026-12-02")}  # fmt: skip
    for name, (results, date) in runs.items():
        stored = {"epochs": 1, "window": 2, "date": date, "results": results}
        (tmp_path / f"{name}.json").write_text(json.dumps(stored))

    def draw(*names: str, output: str) -> None:
        argv = ["degradation.py", "--from_json", *(str(tmp_path / f"{n}.json") for n in names)]
        monkeypatch.setattr(sys, "argv", [*argv, "--output", str(tmp_path / output)])
        degradation.main()

    draw("plain", "resnets", output="all.png")
    rows = [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    # the networks in the usual order, whatever the runs' own
    assert rows[1:] == ["| plain20", "| plain56", "| resnet20", "| resnet56"]
    together = json.loads((tmp_path / "all.json").read_text())
    assert list(together["results"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert together["results"]["resnet56"] == made["plain56"]
    assert (together["epochs"], together["window"], together["date"]) == (1, 2, ["2026-12-01", "2026-12-02"])
    assert "resnet56, training" in svg_text(tmp_path / "all.svg")

    def refused(*names: str, output: str) -> str:
        with pytest.raises(SystemExit) as refusal:
            draw(*names, output=output)
        assert refusal.value.code == 2
        return capsys.readouterr().err.splitlines()[-1]

    assert "exist" in refused("plain", "resnets", output="all.png")  # nothing is overwritten
    assert "more than one of the runs" in refused("plain", "plain", output="twice.png")
    longer = json.loads((tmp_path / "resnets.json").read_text()) | {"epochs": 2}
    (tmp_path / "resnets.json").write_text(json.dumps(longer))
    assert "differ in epochs" in refused("plain", "resnets", output="mixed.png")
    assert not (tmp_path / "mixed.json").exists() and not (tmp_path / "twice.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not a stored run"),  # no such file
        ("{not json", "not a stored run"),
        ('{"epochs": 1, "results": {}}', "no window"),
        ("[1, 2]", "no epochs, window, results"),
    ],
)
def test_degradation_refuses_a_file_that_is_not_a_stored_run_in_one_line(
    scripts: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    degradation = load("degradation")
    stored = tmp_path / "run.json"
    if content is not None:
        stored.write_text(content)
    argv = ["degradation.py", "--from_json", str(stored), "--output", str(tmp_path / "c.png")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as refused:
        degradation.main()
    assert refused.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]  # argparse's usage line, then this one
    assert message in error and str(stored) in error
    assert not (tmp_path / "c.png").exists()


def test_time_to_accuracy_redraws_every_run_and_the_targets_from_the_stored_numbers(
    scripts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    time_to_accuracy = load("time_to_accuracy")
    runs = [
        {"epochs": 4, "seed": 0, "test_acc": 0.9150, "fit_seconds": 44.3},
        {"epochs": 4, "seed": 1, "test_acc": 0.9155, "fit_seconds": 45.1},
        {"epochs": 4, "seed": 2, "test_acc": 0.9170, "fit_seconds": 51.0},
        {"epochs": 8, "seed": 0, "test_acc": 0.9200, "fit_seconds": 55.0},
        {"epochs": 8, "seed": 1, "test_acc": 0.9170, "fit_seconds": 61.0},
        {"epochs": 20, "seed": 0, "test_acc": 0.9375, "fit_seconds": 223.2},
    ]  # 4 epochs: one seed above 91.6%, the mean below it; the median time not the mean
    # 8 epochs: every seed above 91.6%, the median time within 60 s, but one seed took longer
    stored = tmp_path / "runs.json"
    stored.write_text(json.dumps({"recipe": "fast", "runs": runs, "targets": [[0.916, 60], [0.935, 600]]}))
    argv = ["time_to_accuracy.py", "--from_json", str(stored), "--output", str(tmp_path / "t.png")]
    monkeypatch.setattr(sys, "argv", argv)
    time_to_accuracy.main_benchmark()
    out = capsys.readouterr().out
    assert "| epochs | test accuracy, mean of 3 (min-max) | fit wall time (median, max) | reaches |" in out
    assert "| 4 | 91.58% (91.50-91.70) | 45.1 s, 51.0 s | no target |" in out
    assert "| 8 | 91.85% (91.70-92.00) | 58.0 s, 61.0 s | no target |" in out
    assert "| 20 | 93.75% (93.75-93.75) | 223.2 s, 223.2 s | 93.5% in 600 s |" in out
    text = svg_text(tmp_path / "t.svg")
    for label in ("fit wall time (s)", "test accuracy (%)", "runs (one a seed)", "mean over seeds"):
        assert label in text
    assert "targets (accuracy within a time)" in text
    figure = time_to_accuracy.chart(json.loads(stored.read_text()))
    (axes,) = figure.axes
    assert axes.get_xlim()[0] == 0 and axes.get_xlim()[1] >= 600
    assert 90 < axes.get_ylim()[0] <= 91.5 and axes.get_ylim()[1] >= 93.75  # fitted to the accuracies

    drawn = (tmp_path / "t.png").read_bytes()
    with pytest.raises(SystemExit) as refused:  # the chart exists: nothing is overwritten
        time_to_accuracy.main_benchmark()
    assert refused.value.code == 2
    assert "exist(s); choose another --output" in capsys.readouterr().err
    assert (tmp_path / "t.png").read_bytes() == drawn
    for content, message in (("{not json", "not a stored run"), ('{"recipe": "fast"}', "no runs")):
        stored.write_text(content)
        monkeypatch.setattr(sys, "argv", [*argv[:-1], str(tmp_path / "again.png")])
        with pytest.raises(SystemExit) as refused:
            time_to_accuracy.main_benchmark()
        assert refused.value.code == 2
        assert message in capsys.readouterr().err.splitlines()[-1]
