"""Server-rendered SVG charts of the clinician pages (issue 14): an episode's score trajectory
per instrument and a clinic's outcome rates by month of discharge.

The inputs are plain typed values that the pages build from the read models; the output is an
SVG fragment to embed in the HTML with ``role="img"``, a ``<title>`` and a ``<desc>``, beside a
table of the same data (the page renders the table). Scores are in points on the instrument's
published scale: higher is always more severe and is drawn upwards (never flipped).

Drawn with matplotlib's object-oriented API into SVG (ADR 0036; ``api.ui.chart_svg`` makes the
fragment). Sizes are CSS pixels at the natural size (720 x 320); text is at least 12 px, #1a1a1a
on white or on a band fill of at least 4.5:1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from markupsafe import Markup

from api.ui.chart_svg import INK, drawing, to_fragment
from api.ui.dates import MONTHS

if TYPE_CHECKING:  # matplotlib itself is imported at the first chart (api.ui.chart_svg)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

Axis = Literal["date", "session"]


@dataclass(frozen=True)
class ScorePoint:
    """One administration: clinical date, session number (1-based, in clinical order among the
    points shown), total in points; ``voided`` points are drawn only when the page shows them."""

    on: date
    session: int
    total: float
    voided: bool = False
    label: str = ""  # e.g. "PHQ-9 18 on 5 Jan 2026 (moderately severe)"


@dataclass(frozen=True)
class SeverityBand:
    """A published severity band: totals from ``low`` to ``high`` points inclusive."""

    low: float
    high: float
    label: str  # e.g. "moderate"


@dataclass(frozen=True)
class Threshold:
    """A criteria threshold drawn as a horizontal line at ``value`` points."""

    value: float
    label: str  # e.g. "remission below 5 (acnp2006 v1.0.0)"


@dataclass(frozen=True)
class DecisionMark:
    """A stage decision at a clinical date (and the session it rests on, when known)."""

    on: date
    session: int | None
    label: str  # e.g. "response"
    retracted: bool = False


@dataclass(frozen=True)
class ExpectedPoint:
    """The expected-recovery band at a date: ``low``..``high`` points (80 % prediction)."""

    on: date
    session: int | None
    low: float
    high: float


@dataclass(frozen=True)
class Trajectory:
    """Everything one instrument's chart shows. ``scale`` is the published range in points."""

    instrument: str
    scale: tuple[float, float]
    points: tuple[ScorePoint, ...]
    bands: tuple[SeverityBand, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    decisions: tuple[DecisionMark, ...] = ()
    expected: tuple[ExpectedPoint, ...] = ()
    axis: Axis = "date"


@dataclass(frozen=True)
class RateSeries:
    """One outcome's rate (percent of evaluable episodes, None when none were evaluable) per
    month of discharge, in the order of ``RatesChart.months``."""

    label: str  # e.g. "response"
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class RatesChart:
    months: tuple[str, ...]  # "2026-01", ...
    series: tuple[RateSeries, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Figure:
    """An SVG fragment (``<svg role="img" aria-labelledby=...>`` with ``<title>`` and
    ``<desc>``) and the texts it carries."""

    svg: Markup
    title: str
    description: str


# The same input draws the same bytes, so the last figures drawn are kept (about 20 kB each):
# an episode page shown again after a form's redirect, or by the next clinician, draws nothing.
CACHE_SIZE = 256
WIDTH, HEIGHT = 720, 320  # CSS pixels; the SVG's viewBox, scaled by CSS (max-width: 100%)
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 40, 52  # plot margins, pixels
# Severity band fills, least to most severe: a sequential orange whose relative luminance falls
# step by step (0.94, 0.84, 0.72, 0.59, 0.46, 0.35), so the order reads in greyscale too;
# #1a1a1a text on the darkest is 6.6:1. Picked evenly for fewer bands; more than six fall back
# to greys of falling luminance.
BAND_FILLS = ("#fdf8f2", "#fbead6", "#f7d7b5", "#f1c092", "#e9a671", "#df8c55")
LINE = "#08306b"  # the scores: 4.9:1 on the darkest band fill (>= 3:1 for graphics), 12.6:1 on white
DECISION = "#4a1486"  # stage decisions: 4.6:1 on the darkest band fill
EXPECTED = "#174a7c"  # the expected band's hatching and outline: 3.3:1 on the darkest fill
SERIES_STYLES = (  # rates: colour, marker and dash pattern all differ, and a labelled legend
    ("#08306b", "o", "-"), ("#a63603", "s", "--"), ("#00604a", "^", ":"),
    ("#6a1b9a", "D", "-."), ("#1a1a1a", "v", (0, (6, 2, 1, 2, 1, 2))), ("#7a4a00", "P", (0, (2, 2))),
)
EXPECTED_LABEL = "expected (80 %)"
SCORES_LABEL, VOIDED_LABEL = "scores", "voided (not counted)"
NO_SCORES = "no scores to show"
LEGEND_ORDER = (SCORES_LABEL, VOIDED_LABEL, EXPECTED_LABEL)
PX_PER_CHAR = 7.2  # a 12 px sans-serif's mean advance, for reserving room for labels
LABEL_PX = 16  # a 12 px label's height with its backing
LEGEND_HANDLE_PX, LEGEND_ROW_PX = 70, 20  # a legend entry's line sample, gaps; a row's height


def band_fills(count: int) -> tuple[str, ...]:
    """``count`` fill colours (hex), least severe first, each darker in luminance than the last."""
    if count <= len(BAND_FILLS):
        last = len(BAND_FILLS) - 1
        return tuple(BAND_FILLS[round(i * last / max(count - 1, 1))] for i in range(count))
    greys = (round(245 - i * (245 - 140) / (count - 1)) for i in range(count))
    return tuple(f"#{g:02x}{g:02x}{g:02x}" for g in greys)


def trajectory_figure(chart: Trajectory, *, figure_id: str, title: str,
                      description: str) -> Figure:
    """The trajectory chart of ``chart`` as SVG; ``figure_id`` makes its element ids unique in
    the page (ids ``{figure_id}-...``; letters, digits, "-" and "_", else ``ValueError``).

    The y axis is ``chart.scale`` in points, higher upwards; bands shaded and labelled at the
    right edge; thresholds dashed/dotted and labelled at the left; scores a line of filled
    circles, voided ones hollow diamonds not joined; decisions vertical lines (retracted ones
    dashed, "(retracted)"); the expected band hatched, "expected (80 %)". The x axis is the
    clinical date (ticks "5 Jan") or the session number (1..n), as ``chart.axis`` says. The
    last ``CACHE_SIZE`` figures are kept: the same arguments return the same ``Markup``."""
    svg = _trajectory_svg(chart, figure_id, title, description)
    return Figure(svg=svg, title=title, description=description)


@lru_cache(maxsize=CACHE_SIZE)
def _trajectory_svg(chart: Trajectory, figure_id: str, title: str, description: str) -> Markup:
    with drawing(WIDTH, HEIGHT) as figure:
        return _draw_trajectory(figure, chart, figure_id, title, description)


def _draw_trajectory(figure: MplFigure, chart: Trajectory, figure_id: str, title: str,
                     description: str) -> Markup:
    ax = _frame(figure)
    x_of = _XScale(chart)
    low, high = chart.scale
    ax.set_ylim(low, high)  # the published scale, never inverted
    ax.set_yticks(_score_ticks(low, high))
    ax.set_ylabel(f"{chart.instrument} total (points)")
    label_room = max((len(b.label) for b in chart.bands), default=0) * PX_PER_CHAR + 12
    _set_x_range(ax, chart, x_of, label_room)
    _draw_bands(ax, chart)
    _draw_thresholds(ax, chart)
    _draw_expected(ax, chart, x_of)
    _draw_decisions(ax, chart, x_of)
    _draw_points(ax, chart, x_of)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: LEGEND_ORDER.index(labels[i]))
    _legend_above(figure, ax, [handles[i] for i in order], [labels[i] for i in order])
    return to_fragment(figure, figure_id=figure_id, title=title, description=description)


def rates_figure(chart: RatesChart, *, figure_id: str, title: str, description: str) -> Figure:
    """Outcome rates (percent) by month of discharge as SVG lines, one per series: y 0..100 %,
    x the months in order; each series its own colour, marker and dash pattern, named in the
    legend; a month without evaluable episodes (None) is a gap. ``ValueError`` for a series
    whose values do not match the months, or a bad ``figure_id``."""
    svg = _rates_svg(chart, figure_id, title, description)
    return Figure(svg=svg, title=title, description=description)


@lru_cache(maxsize=CACHE_SIZE)
def _rates_svg(chart: RatesChart, figure_id: str, title: str, description: str) -> Markup:
    with drawing(WIDTH, HEIGHT) as figure:
        return _draw_rates(figure, chart, figure_id, title, description)


def _draw_rates(figure: MplFigure, chart: RatesChart, figure_id: str, title: str,
                description: str) -> Markup:
    ax = _frame(figure)
    ax.set_ylim(0, 100)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", color="#c8c8c8", linewidth=0.8)
    ax.set_ylabel("percent of evaluable episodes")
    ax.set_xlabel("month of discharge")
    count = len(chart.months)
    ax.set_xlim(-0.5, max(count - 0.5, 0.5))
    step = max(1, math.ceil(count / 12))
    ticks = list(range(0, count, step))
    ax.set_xticks(ticks, _month_labels([chart.months[i] for i in ticks]))
    for i, series in enumerate(chart.series):
        if len(series.values) != count:
            raise ValueError(f"series {series.label!r}: {len(series.values)} values, {count} months")
        colour, marker, dashes = SERIES_STYLES[i % len(SERIES_STYLES)]
        ys = [math.nan if v is None else v for v in series.values]
        ax.plot(range(count), ys, color=colour, marker=marker, linestyle=dashes, linewidth=2,
                markersize=7, label=series.label, gid=f"series-{i}", clip_on=False)
    handles, labels = ax.get_legend_handles_labels()
    _legend_above(figure, ax, handles, labels)
    return to_fragment(figure, figure_id=figure_id, title=title, description=description)


def _frame(figure: MplFigure) -> Axes:
    """The plot's axes: fixed margins, a plain frame (left and bottom axes only)."""
    ax = figure.add_subplot()
    figure.subplots_adjust(left=LEFT / WIDTH, right=1 - RIGHT / WIDTH, top=1 - TOP / HEIGHT,
                              bottom=BOTTOM / HEIGHT)
    ax.spines[["top", "right"]].set_visible(False)
    ax.xaxis.set_gid("x-axis")
    ax.yaxis.set_gid("y-axis")
    ax.set_facecolor("white")
    return ax


class _XScale:
    """x of a (date, session): days since the chart's first date on the date axis, else the
    session number (a decision or expected point without one takes the session of the last
    point on or before its date; None when there is none)."""

    def __init__(self, chart: Trajectory) -> None:
        dates = ([p.on for p in chart.points] + [d.on for d in chart.decisions]
                 + [e.on for e in chart.expected])
        self.origin = min(dates, default=date(2000, 1, 1))
        self.by_date = chart.axis == "date"
        self.sessions = sorted((p.on, p.session) for p in chart.points)

    def __call__(self, on: date, session: int | None) -> float | None:
        if self.by_date:
            return float((on - self.origin).days)
        if session is not None:
            return float(session)
        before = [s for d, s in self.sessions if d <= on]
        return float(before[-1]) if before else None

    def all_of(self, chart: Trajectory) -> list[float | None]:
        """The x of everything drawn along the axis."""
        marks = [(p.on, p.session) for p in chart.points] + [(d.on, d.session) for d in chart.decisions]
        return [self(on, s) for on, s in marks + [(e.on, e.session) for e in chart.expected]]


def _set_x_range(ax: Axes, chart: Trajectory, x_of: _XScale, label_room: float) -> None:
    """x limits leaving ``label_room`` pixels right of the data for the band labels; the ticks."""
    known = [x for x in x_of.all_of(chart) if x is not None]
    session = chart.axis == "session"
    first, last = (min(known), max(known)) if known else ((1.0, 2.0) if session else (0.0, 28.0))
    pad = 0.5 if session else max(1.0, (last - first) * 0.03)
    start, end = first - pad, max(last + pad, first + pad)
    plot_px = WIDTH - LEFT - RIGHT
    share = 1 - min(0.4, label_room / plot_px)
    ax.set_xlim(start, start + (end - start) / share)
    ax.set_xlabel("session" if session else "clinical date")
    if not known:
        ax.set_xticks([])
        ax.text(0.4, 0.5, NO_SCORES, transform=ax.transAxes, ha="center", va="center", color=INK,
                zorder=5, gid="no-scores", bbox={"facecolor": "white", "edgecolor": "none", "pad": 3})
        return
    if session:
        n = int(last)
        step = 1 if n <= 16 else math.ceil(n / 12)
        ticks = [float(s) for s in range(1, n + 1, step)]
        ax.set_xticks(ticks, [str(int(t)) for t in ticks])
        return
    span = last - first
    step = next((s for s in (1, 2, 7, 14, 28, 56, 91, 182, 364) if span / s <= 7), 728)
    ticks = [first + k * step for k in range(int(span // step) + 1)]
    origin = x_of.origin.toordinal()
    ax.set_xticks(ticks, _date_labels([date.fromordinal(origin + int(t)) for t in ticks]))


def _score_ticks(low: float, high: float) -> list[float]:
    """Whole-point y ticks 1, 2, 5, 10, 20, 25 or 50 points apart, at most seven, on the scale."""
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50) if (high - low) / s <= 6), 100)
    first = math.ceil(low / step) * step
    return [float(v) for v in range(int(first), int(high) + 1, step)]


def _date_labels(days: Sequence[date]) -> list[str]:
    """ "5 Jan" per tick; the year on the first tick and where the year changes."""
    labels, year = [], None
    for day in days:
        text = f"{day.day} {MONTHS[day.month - 1]}"
        labels.append(text if day.year == year else f"{text} {day.year}")
        year = day.year
    return labels


def _month_labels(months: Sequence[str]) -> list[str]:
    """ "Jan" per "2026-01" tick, with the year beneath on the first tick and where it changes."""
    labels, shown = [], None
    for text in months:
        year, month = text.split("-")[:2]
        name = MONTHS[int(month) - 1]
        labels.append(name if year == shown else f"{name}\n{year}")
        shown = year
    return labels


def _legend_above(figure: MplFigure, ax: Axes, handles: list[Any], labels: list[str]) -> None:
    """The legend in rows above the plot, as many entries a row as fit the width (entries'
    widths estimated from their text), the plot lowered by any row past the first."""
    if not labels:
        return
    widths = [LEGEND_HANDLE_PX + len(label) * PX_PER_CHAR for label in labels]
    columns = len(labels)
    while columns > 1 and sum(sorted(widths, reverse=True)[:columns]) > WIDTH - LEFT:
        columns -= 1
    rows = math.ceil(len(labels) / columns)
    figure.subplots_adjust(top=1 - (TOP + (rows - 1) * LEGEND_ROW_PX) / HEIGHT)
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=columns,
              frameon=False, borderaxespad=0.2, handlelength=2.6, columnspacing=1.6)


def _draw_bands(ax: Axes, chart: Trajectory) -> None:
    """Each band from midway after the previous band's top to midway before the next one's low."""
    bands = sorted(chart.bands, key=lambda b: b.low)
    low, high = chart.scale
    transform = ax.get_yaxis_transform()
    for i, (band, fill) in enumerate(zip(bands, band_fills(len(bands)), strict=True)):
        y0 = low if i == 0 else (bands[i - 1].high + band.low) / 2
        y1 = high if i == len(bands) - 1 else (band.high + bands[i + 1].low) / 2
        y0, y1 = max(y0, low), min(y1, high)
        if y1 <= y0:
            continue  # outside the scale
        ax.axhspan(y0, y1, facecolor=fill, edgecolor="none", zorder=0, gid=f"band-{i}")
        ax.text(0.995, (y0 + y1) / 2, band.label, transform=transform, ha="right", va="center",
                color=INK, zorder=1, gid=f"band-label-{i}")


def _draw_thresholds(ax: Axes, chart: Trajectory) -> None:
    """Dashed, then dotted, lines labelled at the left above the line; a label that would touch
    the label just above it goes under its own line instead."""
    transform = ax.get_yaxis_transform()
    low, high = chart.scale
    px_per_point = (HEIGHT - TOP - BOTTOM) / max(high - low, 1e-9)
    above: float | None = None
    for i, threshold in sorted(enumerate(chart.thresholds), key=lambda it: -it[1].value):
        ax.axhline(threshold.value, color=INK, linewidth=1.5, linestyle="--" if i % 2 == 0 else ":",
                   zorder=2, gid=f"threshold-{i}")
        crowded = above is not None and (above - threshold.value) * px_per_point < LABEL_PX
        ax.text(0.005, threshold.value, threshold.label, transform=transform, ha="left",
                va="top" if crowded else "bottom", zorder=5, gid=f"threshold-label-{i}",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1})
        above = threshold.value - (LABEL_PX / px_per_point if crowded else 0)  # the label's foot


def _draw_expected(ax: Axes, chart: Trajectory, x_of: _XScale) -> None:
    rows = sorted((x, e.low, e.high) for e in chart.expected
                  if (x := x_of(e.on, e.session)) is not None)
    if not rows:
        return
    xs, lows, highs = zip(*rows, strict=True)
    ax.fill_between(xs, lows, highs, facecolor=(0.09, 0.29, 0.49, 0.12), edgecolor="none",
                    zorder=3, gid="expected-fill")
    ax.fill_between(xs, lows, highs, facecolor="none", edgecolor=EXPECTED, hatch="//",
                    linewidth=1, zorder=3, label=EXPECTED_LABEL, gid="expected")


def _draw_decisions(ax: Axes, chart: Trajectory, x_of: _XScale) -> None:
    """One vertical line per date (session) and state: decisions on the same one share it and
    its label ("response, partial remission"); kept ones labelled left of the line, retracted
    ones dashed and labelled right of it, so the two never cover each other."""
    groups: dict[tuple[float, bool], list[str]] = {}
    for mark in chart.decisions:
        x = x_of(mark.on, mark.session)
        if x is not None:
            groups.setdefault((x, mark.retracted), []).append(mark.label)
    transform = ax.get_xaxis_transform()
    for i, ((x, retracted), labels) in enumerate(groups.items()):
        ax.axvline(x, color=DECISION, linewidth=1.5, linestyle="--" if retracted else "-",
                   zorder=4, gid=f"decision-{i}")
        text = ", ".join(labels) + (" (retracted)" if retracted else "")
        ax.text(x, 0.98, text, transform=transform, rotation=90, ha="left" if retracted else "right",
                va="top", color=INK, zorder=5, gid=f"decision-label-{i}",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1})


def _draw_points(ax: Axes, chart: Trajectory, x_of: _XScale) -> None:
    """Counted scores: a line of filled circles in x order; voided ones: hollow diamonds."""
    counted = sorted((x_of(p.on, p.session), p.total) for p in chart.points if not p.voided)
    voided = sorted((x_of(p.on, p.session), p.total) for p in chart.points if p.voided)
    if counted:
        xs, ys = zip(*counted, strict=True)
        ax.plot(xs, ys, color=LINE, linewidth=2, marker="o", markersize=7, markerfacecolor=LINE,
                markeredgecolor="white", markeredgewidth=1, zorder=6, clip_on=False,
                label=SCORES_LABEL, gid="points")
    if voided:
        xs, ys = zip(*voided, strict=True)
        ax.plot(xs, ys, linestyle="none", marker="D", markersize=8, markerfacecolor="white",
                markeredgecolor=LINE, markeredgewidth=2, zorder=6, clip_on=False,
                label=VOIDED_LABEL, gid="voided")
