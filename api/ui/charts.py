"""Server-rendered SVG charts of the clinician pages (issue 14): an episode's score trajectory
per instrument and a clinic's outcome rates by month of discharge.

The inputs are plain typed values that the pages build from the read models; the output is an
SVG fragment to embed in the HTML with ``role="img"``, a ``<title>`` and a ``<desc>``, beside a
table of the same data (the page renders the table). Scores are in points on the instrument's
published scale: higher is always more severe and is drawn upwards (never flipped).

Interface fixed for issue 14's parallel work; the drawing is ``charts``' own (ADR 0036)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from markupsafe import Markup

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


def trajectory_figure(chart: Trajectory, *, figure_id: str, title: str,
                      description: str) -> Figure:
    """The trajectory chart of ``chart`` as SVG; ``figure_id`` makes its element ids unique in
    the page."""
    raise NotImplementedError("charts: drawing not built yet (issue 14, ADR 0036)")


def rates_figure(chart: RatesChart, *, figure_id: str, title: str, description: str) -> Figure:
    """Outcome rates (percent) by month of discharge as SVG lines, one per series."""
    raise NotImplementedError("charts: drawing not built yet (issue 14, ADR 0036)")
