"""NHS Talking Therapies course outcome at discharge (SPEC §2.4, C8).

Course-level, not a stage machine: first against last scores of PHQ-9 and GAD-7 over a finished
course (NHS Digital measure definitions M076, M179/M180, M186, M187, M192, M195, M1010).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Point
from domain.instruments import points

MEASURES = ("PHQ-9", "GAD-7")  # depression and anxiety measures (SPEC §2.4)


def paired_measure(course: Sequence[Point], instrument: str) -> tuple[Point, Point] | None:
    """First and last scorable points of ``instrument`` in the course, when it is paired:
    scorable on at least 2 distinct dates (C8); else None."""
    scored = [p for p in course if p.obs.instrument == instrument and p.score.scorable]
    if len({p.on for p in scored}) < 2:
        return None
    return scored[0], scored[-1]


def nhstt_outcome(scored: Sequence[Point], criteria: CriteriaSet,
                  discharge: date | None) -> dict[str, Any]:
    """NHS Talking Therapies course outcome at discharge (SPEC §2.4, C8).

    ``scored``: the episode's day scores (``day_scores``); ``discharge`` ends the course
    (default: the last assessment's date). Returns ``eligible``, ``case_at_start``,
    ``recovery``, ``reliable_improvement``, ``reliable_deterioration``, ``reliable_recovery``,
    ``no_reliable_change`` (bool, or null where the measure's denominator excludes the course),
    plus ``discharge``, ``appointments``, ``measures`` (first, last, change in points), ``tags``
    and, when ineligible, ``reason``.
    """
    if discharge is None and scored:
        discharge = max(point.on for point in scored)
    course = [point for point in scored if discharge is None or point.on <= discharge]
    dates = sorted({point.on for point in course})
    paired = {code: paired_measure(course, code) for code in MEASURES}
    result: dict[str, Any] = {
        "eligible": False, "case_at_start": None, "recovery": None,
        "reliable_improvement": None, "reliable_deterioration": None,
        "reliable_recovery": None, "no_reliable_change": None,
        "discharge": discharge.isoformat() if discharge else None,
        "appointments": len(dates), "measures": {}, "tags": [],
    }
    for code, pair in paired.items():
        if pair:
            first, last = pair
            result["measures"][code] = {
                "first": first.evidence(), "last": last.evidence(),
                "change": points(last.value - first.value)}
    treatment_appointments = len(dates) - 1  # the first is the assessment appointment (C8)
    if treatment_appointments < 2 or paired["PHQ-9"] is None:
        result["reason"] = ("fewer than 2 treatment appointments" if treatment_appointments < 2
                            else "PHQ-9 not paired (scorable on fewer than 2 dates)")
        return result
    measures = {code: pair for code, pair in paired.items() if pair is not None}
    if "GAD-7" not in measures:
        result["tags"].append("anxiety_measure_absent")
    result.update(_outcomes(measures, criteria.params))
    return result


def _outcomes(measures: dict[str, tuple[Point, Point]], params: Mapping[str, Any]
              ) -> dict[str, Any]:
    """Caseness, recovery and reliable change of an eligible course from its paired measures."""
    caseness, reliable_change = params["caseness"], params["reliable_change"]
    case = any(first.value >= caseness[code] for code, (first, _) in measures.items())
    improved = [code for code, (first, last) in measures.items()
                if first.value - last.value >= reliable_change[code]]
    worse = [code for code, (first, last) in measures.items()
             if last.value - first.value >= reliable_change[code]]
    reliable_improvement = bool(improved) and not worse
    reliable_deterioration = bool(worse) and (
        params["deterioration_rule"] == "any" or not improved)
    recovery: bool | None = None
    if case:
        below = all(last.value < caseness[code] for code, (_, last) in measures.items())
        recovery = below and ("GAD-7" in measures or not params["require_both_measures_paired"])
    return {
        "eligible": True, "case_at_start": case, "recovery": recovery,
        "reliable_improvement": reliable_improvement,
        "reliable_deterioration": reliable_deterioration,
        "reliable_recovery": None if recovery is None else recovery and reliable_improvement,
        "no_reliable_change": not reliable_improvement and not reliable_deterioration,
    }
