"""Line charts of benchmark results, drawn with matplotlib for the docs: PNG to look at, SVG beside it to zoom.

The benchmarks' own charts only (``degradation.py``, ``time_to_accuracy.py``); the training figures of
``zoo.figures`` stay in PIL, where a figure costs milliseconds. Every chart has round tick values (steps of 1, 2
or 5 times a power of ten, the axes ending on a tick), axis labels that name their unit, a legend and a title.
Text stays text in the SVG, so its labels can be searched and read back. Figures are built on the Agg canvas
directly, without pyplot: no display, no global figure state. The scripts import this file as ``charts``, from
their own folder.

    from charts import Series, line_chart, save
    figure = line_chart([Series("plain20", steps, errors)], title="...", x_label="optimiser step (batches)",
                        y_label="training error (%)")
    save(figure, Path("docs/degradation.png"))       # docs/degradation.png and docs/degradation.svg

The numbers behind a chart are stored as JSON beside it by each script; :func:`read_stored` reads them back for
its ``--from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import nonsingular

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["STYLE", "Series", "line_chart", "read_stored", "save"]

#: matplotlib settings of every chart; the SVG ones keep text as text and make the file the same on every save
STYLE: dict[RcKeyType, Any] = {
    "axes.grid": True,
    "axes.unicode_minus": False,  # an ASCII minus: tick labels read back as numbers
    "grid.color": "0.88",
    "font.size": 10,
    "svg.fonttype": "none",
    "svg.hashsalt": "zoo",
}
#: at most this many intervals between the ticks of an axis
TICKS = 10
#: the steps between ticks, times a power of ten
ROUND_STEPS = [1, 2, 5, 10]
#: the share of the values' range left free beyond the highest value (and the lowest, when the axis is not from 0)
PAD = 0.02


@dataclass(frozen=True)
class Series:
    """One labelled series: ``y[i]`` at ``x[i]``, drawn as a line, as markers (``line=False``), or both.

    Args:
        label: its name in the legend.
        x: the horizontal positions, in the unit of the chart's ``x_label``.
        y: the values, as many as ``x``, in the unit of ``y_label``.
        colour: any matplotlib colour; None takes the next of the default cycle.
        line: join the points with a line.
        marker: a matplotlib marker (``"o"``, ``"s"``, ``"*"``) at every point; None for a plain line.
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str | None = None
    line: bool = True
    marker: str | None = None


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_from_zero: bool = True,
    y_from_zero: bool = True,
    legend_columns: int = 1,
    size: tuple[float, float] = (9.0, 5.6),
) -> Figure:
    """A chart of ``series`` on one pair of axes, with round ticks, the axis labels, a legend and ``title``.

    Args:
        series: what to draw, in legend order.
        title: the chart's title, one line.
        x_label: the horizontal axis's name with its unit, e.g. ``"fit wall time (s)"``.
        y_label: the vertical axis's name with its unit, e.g. ``"training error (%)"``.
        x_from_zero: start the horizontal axis at 0 (steps, seconds); False fits it to the values.
        y_from_zero: start the vertical axis at 0 (errors); False fits it to the values (accuracies).
        legend_columns: columns of the legend; its entries fill them top to bottom, in ``series`` order.
        size: width and height in inches (100 pixels each in the PNG).

    Returns:
        The figure, on an Agg canvas; write it with :func:`save`.
    """
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=size, dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for one in series:
            axes.plot(
                one.x,
                one.y,
                label=one.label,
                color=one.colour,
                linestyle="-" if one.line else "none",
                marker=one.marker,
                markeredgecolor="black" if one.marker and not one.line else None,
                clip_on=False,  # a marker on an axis limit is drawn whole
            )
        for axis, from_zero, (low, high), set_limits in (
            (axes.xaxis, x_from_zero, axes.dataLim.intervalx, axes.set_xlim),
            (axes.yaxis, y_from_zero, axes.dataLim.intervaly, axes.set_ylim),
        ):
            locator = MaxNLocator(nbins=TICKS, steps=ROUND_STEPS)
            axis.set_major_locator(locator)
            pad = PAD * (high - low)  # no point on the frame
            low, high = nonsingular(0.0 if from_zero and low >= 0 else low - pad, high + pad, expander=0.05)
            ticks = locator.tick_values(low, high)  # round values, the first <= low, the last >= high
            set_limits(ticks[0], ticks[-1])
        axes.set_title(title)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.legend(ncols=legend_columns)
    return figure


def save(figure: Figure, png: Path) -> tuple[Path, Path]:
    """Write ``figure`` to ``png`` and as an SVG beside it (the same name, ``.svg``); the two paths."""
    svg = png.with_suffix(".svg")
    png.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        figure.savefig(png, format="png", metadata={"Software": None})
        figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png, svg


def read_stored(path: Path, keys: Sequence[str], script: str) -> dict[str, Any]:
    """The numbers ``script`` stored as JSON beside its chart, read back to print and draw them again.

    Args:
        path: the JSON file.
        keys: the keys every file ``script`` stores holds.
        script: the script's file name, for the message.

    Raises:
        ValueError: the file cannot be read, is not JSON, or is not an object holding all of ``keys``; the message
            names the file (and the keys it lacks).
    """
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a stored run ({error})") from None
    if missing := [key for key in keys if not isinstance(stored, dict) or key not in stored]:
        raise ValueError(f"{path}: not a run stored by {script} (no {', '.join(missing)})")
    return stored
