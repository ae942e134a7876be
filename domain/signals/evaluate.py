"""Whether an episode is on track: a rule pack's signal as of the latest point, with its evidence
and one sentence a clinician reads.

Time axis: week = (clinical date - the episode's opened_on).days / 7. No signal before day 21
(week 3, ``EARLIEST_DAY``): earlier points are never evaluated (ADR 0030). Two kinds give signals:
- ``cut_points`` (Schueller et al. 2015 for PHQ-9; STAR*D, Trivedi 2006/2009 for QIDS-SR16): at
  decision point week w the point dated within [7w - tolerance_days, 7w + tolerance_days] closest to
  day 7w (a tie: the later) is "not on track" when its score >= the week's threshold;
- ``expected_recovery`` (Finch, Lambert & Schaalje 2001): the latest point is "not on track" when
  its score is above the prediction interval of the clinic's curve for the baseline's severity
  band; without such a curve the status is "insufficient", never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from domain.criteria.timeline import Observation, Point
from domain.instruments import Points, format_points
from domain.instruments import points as json_points
from domain.signals.curves import RecoveryCurve
from domain.signals.packs import EARLIEST_DAY, RulePack, baseline_band

Status = Literal["on_track", "not_on_track", "insufficient"]


@dataclass(frozen=True)
class Signal:
    """A rule pack's on-track status at one assessment.

    ``rule`` is the pack's ref; ``assessment_id`` and ``clinical_date`` the point the decision
    rests on; ``week`` its week of the episode (rounded to 1 decimal); ``decision_point`` "week 4"
    for cut points, None for expected recovery; ``evidence`` JSON data (scores in points, the
    threshold or the expected value and band); ``explanation`` one sentence.
    """

    rule: dict[str, str]
    status: Status
    assessment_id: str
    clinical_date: date
    week: float
    decision_point: str | None
    evidence: dict[str, Any]
    explanation: str


def applies(pack: RulePack, instrument: str, curve: RecoveryCurve | None = None) -> bool:
    """Whether ``pack`` watches an episode staging ``instrument``: a cut-point pack its own
    instrument; expected recovery the instruments with baseline bands (with ``curve``: only the
    curve's instrument); a safety-item or overdue pack every episode (safety reads the recorded
    PHQ-9 assessments, whatever is staged)."""
    if pack.kind == "cut_points":
        return pack.instrument == instrument
    if pack.kind == "expected_recovery":
        if curve is not None:
            return curve.instrument == instrument
        return instrument in pack.params["bands"]
    return True


def current_signal(pack: RulePack, points: Sequence[Point], *, opened_on: date,
                   curve: RecoveryCurve | None = None) -> Signal | None:
    """The pack's status as of the latest of ``points`` (the staged instrument's scorable points,
    one per day, in clinical order: ``staged_points(...)``; the baseline is ``points[0]``).

    Cut points: the latest decision point with a point in its window. Expected recovery: the
    latest point, when it is not the baseline and is at week >= ``earliest_week``; with no
    ``curve``, or no curve for the baseline's band, status "insufficient"; the curve's own
    ``probability`` and ``min_episodes`` (those it was fitted with) decide, the pack's
    ``earliest_week`` when to start. Returns None when no
    decision is due yet, and for packs that give no on-track signal here (safety_item, overdue)
    or do not apply to the points' instrument (``applies``).
    """
    if not points or not applies(pack, points[0].obs.instrument, curve):
        return None
    if pack.kind == "cut_points":
        return _cut_point_signal(pack, points, opened_on)
    if pack.kind == "expected_recovery":
        return _expected_recovery_signal(pack, points, opened_on, curve)
    return None


def safety_positive(pack: RulePack, obs: Observation) -> bool:
    """Whether ``obs`` answers the safety item of a ``safety_item`` pack at or above
    ``positive_from`` (phq9-item9: PHQ-9 item 9, thoughts of death or self-harm, >= 1; Kroenke
    2001; the same as the SAFETY_ITEM9_POSITIVE flag of domain.instruments for the built-in).
    False for another instrument, no items, an unanswered item, or another kind of pack."""
    if pack.kind != "safety_item" or obs.instrument != pack.instrument or obs.items is None:
        return False
    index = int(pack.params["item"]) - 1
    answer = obs.items[index] if index < len(obs.items) else None
    return answer is not None and answer >= int(pack.params["positive_from"])


# --- cut points ----------------------------------------------------------------------------------

def _day(point: Point, opened_on: date) -> int:
    return (point.on - opened_on).days


def decision_point_choice(pack: RulePack, points: Sequence[Point], opened_on: date,
                          week: int) -> Point | None:
    """The point decision point ``week`` rests on: among the points dated on day >= 21 within
    [7*week - tolerance_days, 7*week + tolerance_days] days of opened_on, the closest to day
    7*week (a tie: the later one); None when the window has none."""
    return _choice(pack, [(p, _day(p, opened_on)) for p in points], week)


def _choice(pack: RulePack, dated: Sequence[tuple[Point, int]], week: int) -> Point | None:
    """``decision_point_choice`` over points paired with their day of the episode."""
    tolerance = int(pack.params["tolerance_days"])
    window = [(p, day) for p, day in dated if _in_window(day, week, tolerance)]
    if not window:
        return None
    return min(window, key=lambda pd: (abs(pd[1] - 7 * week), -pd[1]))[0]


def _in_window(day: int, week: int, tolerance: int) -> bool:
    """Whether day ``day`` of the episode is in decision point ``week``'s window (and not
    before day 21)."""
    return day >= EARLIEST_DAY and abs(day - 7 * week) <= tolerance


def in_decision_window(pack: RulePack, day: int) -> bool:
    """Whether a point on day ``day`` of the episode can take part in a cut-point pack's
    decision (in some decision point's window, day >= 21): a point outside every window leaves
    the pack's signal as it was, so adding or voiding one need not re-evaluate it. True for
    the other kinds (expected recovery reads every point, the baseline included)."""
    if pack.kind != "cut_points":
        return True
    tolerance = int(pack.params["tolerance_days"])
    return any(_in_window(day, int(week), tolerance) for week in pack.params["thresholds"])


def _cut_point_signal(pack: RulePack, points: Sequence[Point], opened_on: date) -> Signal | None:
    dated = [(p, _day(p, opened_on)) for p in points]  # each point's day, computed once
    for week in sorted((int(w) for w in pack.params["thresholds"]), reverse=True):
        point = _choice(pack, dated, week)
        if point is not None:
            return _cut_point_decision(pack, point, week, opened_on)
    return None


def _cut_point_decision(pack: RulePack, point: Point, week: int, opened_on: date) -> Signal:
    threshold = int(pack.params["thresholds"][str(week)])
    off = point.value >= threshold
    evidence: dict[str, Any] = {"score": json_points(point.value), "threshold": threshold}
    category = _category(pack, point.value)
    if category is not None:
        evidence["category"] = category
    at_week = _week(point, opened_on)
    scored = f"{point.obs.instrument} {format_points(point.value)} at week {_text(at_week)}"
    if category is not None:
        scored += f" ({category})"
    comparison = "is at or above" if off else "is below"
    explanation = (f"{scored} {comparison} {threshold}, the week-{week} cut-off for not on track "
                   f"({pack.label()})")
    return Signal(rule=pack.ref(), status="not_on_track" if off else "on_track",
                  assessment_id=point.id, clinical_date=point.on, week=at_week,
                  decision_point=f"week {week}", evidence=evidence, explanation=explanation)


def _category(pack: RulePack, score: Points) -> str | None:
    """STAR*D's outcome category of ``score`` (remission <= 5, partial response 6-8,
    non-response >= 9 on the QIDS-SR16; Trivedi 2006), when the pack has categories."""
    label = None
    for entry in pack.params.get("categories", ()):
        if score >= entry["lower"]:
            label = str(entry["label"])
    return label


# --- expected recovery ---------------------------------------------------------------------------

def _expected_recovery_signal(pack: RulePack, points: Sequence[Point], opened_on: date,
                              curve: RecoveryCurve | None) -> Signal | None:
    baseline, latest = points[0], points[-1]
    day = _day(latest, opened_on)
    if len(points) < 2 or day < max(EARLIEST_DAY, 7 * int(pack.params["earliest_week"])):
        return None
    instrument = baseline.obs.instrument
    band = baseline_band(pack, instrument, baseline.value)
    band_curve = curve.curve_for(band) if curve is not None else None
    if curve is None or band_curve is None:
        return _insufficient(pack, latest, opened_on, band, curve)
    expected, lower, upper = band_curve.interval(day / 7)
    score = latest.value
    status: Status = "not_on_track" if score > upper else "on_track"
    place = "above" if score > upper else "below" if score < lower else "within"
    at_week = _week(latest, opened_on)
    explanation = (f"{instrument} {format_points(score)} at week {_text(at_week)} is {place} the "
                   f"expected {_span(lower, upper, score)} for a {band} start ({pack.label()}, "
                   f"fitted on {band_curve.episodes} episodes)")
    evidence = {"score": json_points(score), "expected": round(expected, 1),
                "band": [round(lower, 1), round(upper, 1)], "baseline_band": band,
                "baseline_score": json_points(baseline.value), "probability": curve.probability,
                "fit": curve.ref(), "episodes": band_curve.episodes}
    return Signal(rule=pack.ref(), status=status, assessment_id=latest.id,
                  clinical_date=latest.on, week=at_week, decision_point=None,
                  evidence=evidence, explanation=explanation)


def _insufficient(pack: RulePack, latest: Point, opened_on: date, band: str,
                  curve: RecoveryCurve | None) -> Signal:
    instrument = latest.obs.instrument
    needed = curve.min_episodes if curve is not None else int(pack.params["min_episodes"])
    start = f"no expected-recovery curve for a {band} {instrument} start"
    if curve is None:
        explanation = f"{start}: the clinic has no fit yet ({pack.label()})"
        episodes = 0
    else:
        episodes = curve.count_of(band)
        explanation = (f"{start}: the clinic's fit has {episodes} such episodes, {needed} are "
                       f"needed ({pack.label()})")
    evidence = {"score": json_points(latest.value), "baseline_band": band, "episodes": episodes,
                "min_episodes": needed, "fit": curve.ref() if curve is not None else None}
    return Signal(rule=pack.ref(), status="insufficient", assessment_id=latest.id,
                  clinical_date=latest.on, week=_week(latest, opened_on), decision_point=None,
                  evidence=evidence, explanation=explanation)


# --- formatting ----------------------------------------------------------------------------------

def _week(point: Point, opened_on: date) -> float:
    return round(_day(point, opened_on) / 7, 1)


def _text(week: float) -> str:
    """4.0 -> "4", 4.3 -> "4.3"."""
    return f"{week:.1f}".removesuffix(".0")


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _span(lower: float, upper: float, score: Points) -> str:
    """The band as whole points ("4-11"), or to 1 decimal when rounding would contradict the
    comparison with ``score`` (12 above 11.6 reads "4.1-11.6", not "4-12")."""
    low, high = _half_up(lower), _half_up(upper)
    if (score > upper) != (score > high) or (score < lower) != (score < low):
        return f"{lower:.1f}-{upper:.1f}"
    return f"{low}-{high}"
