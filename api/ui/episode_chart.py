"""The episode page's charts and tables (issue 14): one ``charts.Trajectory`` per instrument with
scores, built from the application's views, and the rows of the table beside it (the same points).

Scales and severity bands are the instruments' published ones (``domain.instruments``); the
thresholds are the criteria set in force (``CriteriaSet.thresholds``: remission below, episode
from; C11); the expected-recovery band is the clinic's fitted curve (Finch, Lambert & Schaalje
2001; ``domain.signals.curves``) when an expected-recovery pack with a curve watches the episode
(``domain.signals.watch.signal_packs``)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from api.ui.charts import (
    Axis,
    DecisionMark,
    ExpectedPoint,
    ScorePoint,
    SeverityBand,
    Threshold,
    Trajectory,
)
from api.ui.episode_summary import Decision, day, points, stage_label
from application.views import AssessmentView
from domain.criteria.decisions import SAFETY
from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Observation
from domain.instruments import INSTRUMENTS, Instrument
from domain.rules import staged_points
from domain.signals.packs import baseline_band
from domain.signals.watch import signal_packs

SUPERSEDED = "superseded by a later entry the same day"


def day_points(observations: Iterable[Observation], criteria: CriteriaSet) -> frozenset[str]:
    """The ids of the assessments the staging rules use, of every instrument: one per
    instrument and clinical day, a same-day correction superseding the earlier record (SPEC
    G2, ADR 0011), as ``domain.rules.staged_points`` (the fold's own timeline) gives them.
    ``observations``: the episode's valid (not voided) assessments; ``criteria``: the set in
    force (its missing-item policy decides what is scorable)."""
    valid = list(observations)
    return frozenset(p.obs.assessment_id for code in {o.instrument for o in valid}
                     for p in staged_points(valid, criteria, code))


def slug(instrument: str) -> str:
    """An instrument code as an id part: lowercase, runs of other characters "-" ("PHQ-9" ->
    "phq-9", "HAM-D17" -> "ham-d17")."""
    return re.sub(r"[^a-z0-9]+", "-", instrument.lower()).strip("-")


@dataclass(frozen=True)
class Row:
    """One row of the table beside a chart: the point's date, session (None: not a session, a
    superseded same-day entry), total (points), severity band, and the void reason when voided
    (or superseded: ``SUPERSEDED``)."""

    on: date
    session: int | None
    total: str
    severity: str
    voided: bool
    void_reason: str | None


@dataclass(frozen=True)
class InstrumentChart:
    """One instrument's chart input and table rows; ``slug`` makes the ids ``chart-{slug}`` and
    ``table-{slug}``."""

    instrument: str
    slug: str
    trajectory: Trajectory
    rows: tuple[Row, ...]
    title: str
    description: str


def severity_bands(instrument: Instrument) -> tuple[SeverityBand, ...]:
    """The published bands as inclusive ranges in points: each from its lower bound to one below
    the next band's (the last to the scale's maximum)."""
    bands = instrument.bands
    return tuple(SeverityBand(b.lower, bands[i + 1].lower - 1 if i + 1 < len(bands)
                              else instrument.total_max, b.label)
                 for i, b in enumerate(bands))


def thresholds(criteria: CriteriaSet, instrument: str) -> tuple[Threshold, ...]:
    """The criteria set's remission and episode thresholds for ``instrument`` (none when the set
    stages no such instrument), labelled with the set's id and version."""
    found = criteria.thresholds(instrument)
    if found is None:
        return ()
    ref = f"{criteria.id} v{criteria.version}"
    return (Threshold(found.remission_below, f"remission below {found.remission_below} ({ref})"),
            Threshold(found.episode_from, f"episode from {found.episode_from} ({ref})"))


def decision_of(event: Mapping[str, Any]) -> Decision:
    """A stage history entry (the stages read model's JSON) as the summary's ``Decision``."""
    return Decision(str(event["type"]), date.fromisoformat(str(event["date"])),
                    event.get("degree"))


def decision_label(event: Mapping[str, Any]) -> str:
    """What a decision is called on the page: its stage ("response", "full remission"), or
    "safety item positive" for the safety flag."""
    if event["type"] == SAFETY:
        return "safety item positive"
    return stage_label(str(event["type"]), event.get("degree")) or str(event["type"])


def expected_band(watching: Mapping[str, Any] | None, instrument: str, opened_on: date,
                  shown: Sequence[ScorePoint]) -> tuple[ExpectedPoint, ...]:
    """The expected-recovery band (``low``..``high`` points, the curve's prediction interval) at
    each shown valid point's week since ``opened_on``, for the curve of the baseline's severity
    band; empty when no expected-recovery pack with a curve watches the episode, or the curve
    has no fit for that band."""
    packs, curve = signal_packs(watching, instrument)
    pack = next((p for p in packs if p.kind == "expected_recovery"), None)
    valid = [p for p in shown if not p.voided]
    if pack is None or curve is None or curve.instrument != instrument or not valid:
        return ()
    try:
        band = curve.curve_for(baseline_band(pack, instrument,
                                              Fraction(valid[0].total).limit_denominator(1000)))
    except ValueError:
        return ()
    if band is None:
        return ()
    expected = []
    for point in valid:
        _, low, high = band.interval((point.on - opened_on).days / 7)
        expected.append(ExpectedPoint(point.on, point.session, round(low, 2), round(high, 2)))
    return tuple(expected)


def instrument_charts(assessments: Sequence[AssessmentView], history: Sequence[Mapping[str, Any]],
                      *, staged: str, criteria: CriteriaSet, watching: Mapping[str, Any] | None,
                      opened_on: date, axis: Axis, show_voided: bool,
                      kept: Collection[str]) -> list[InstrumentChart]:
    """One chart per instrument with a scored assessment (the staged instrument first, then by
    code): points in clinical order (voided ones only with ``show_voided``), sessions numbered
    1.. among the points shown. ``kept``: the ids the rules use (``day_points``); a valid
    assessment not kept (superseded the same day, G2) is never drawn nor numbered, and is a
    table row (marked ``SUPERSEDED``) only with ``show_voided``. Then the decisions of
    ``history`` (the staged instrument's; retracted ones as the history holds them) and the
    expected band on the staged instrument's chart."""
    codes = sorted({a.instrument for a in assessments if a.total is not None},
                   key=lambda code: (code != staged, code))
    charts = []
    for code in codes:
        instrument = INSTRUMENTS[code]
        scored = [a for a in assessments if a.instrument == code and a.total is not None]
        chosen = [a for a in scored
                  if a.assessment_id in kept or (show_voided and a.voided)]
        listed = [a for a in scored if a in chosen or (show_voided and not a.voided)]
        if not chosen:
            continue
        shown = [ScorePoint(a.administered_on, i, float(a.total), a.voided,
                            f"{code} {points(float(a.total))} on {day(a.administered_on)}"
                            f"{f' ({a.severity})' if a.severity else ''}"
                            f"{' (voided)' if a.voided else ''}")
                 for i, a in enumerate(chosen, start=1) if a.total is not None]
        session_of = {a.assessment_id: i for i, a in enumerate(chosen, start=1)}
        marks = tuple(DecisionMark(date.fromisoformat(str(e["date"])),
                                   session_of.get(str(e.get("assessment_id"))),
                                   decision_label(e), bool(e.get("retracted")))
                      for e in history) if code == staged else ()
        trajectory = Trajectory(
            instrument=code, scale=(0, instrument.total_max), points=tuple(shown),
            bands=severity_bands(instrument),
            thresholds=thresholds(criteria, code) if code == staged else (),
            decisions=marks,
            expected=expected_band(watching, code, opened_on, shown) if code == staged else (),
            axis=axis)
        rows = tuple(Row(a.administered_on, session_of.get(a.assessment_id),
                         points(float(a.total)), a.severity or "",
                         a.voided or a.assessment_id not in session_of,
                         a.void_reason if a.assessment_id in session_of else SUPERSEDED)
                     for a in listed if a.total is not None)
        charts.append(InstrumentChart(code, slug(code), trajectory, rows,
                                      f"{code} scores by {'session' if axis == 'session' else 'date'}",
                                      describe(trajectory)))
    return charts


def describe(chart: Trajectory) -> str:
    """The chart's text description (its ``<desc>`` and caption): the points' span and range,
    the thresholds and the decisions marked."""
    valid = [p for p in chart.points if not p.voided]
    parts = [f"{len(chart.points)} {chart.instrument} score{'s' if len(chart.points) != 1 else ''}"
             + (f" from {day(chart.points[0].on)} to {day(chart.points[-1].on)}"
                if len(chart.points) > 1 else f" on {day(chart.points[0].on)}")]
    if valid:
        parts.append(f"first {points(valid[0].total)}, latest {points(valid[-1].total)} points "
                     f"on a scale of {points(chart.scale[0])} to {points(chart.scale[1])}")
    if len(valid) != len(chart.points):
        parts.append(f"{len(chart.points) - len(valid)} voided")
    parts.extend(t.label for t in chart.thresholds)
    for mark in chart.decisions:
        parts.append(f"{mark.label} on {day(mark.on)}{' (retracted)' if mark.retracted else ''}")
    if chart.expected:
        parts.append("the expected-recovery band of the clinic's curve")
    return "; ".join(parts) + "."
