"""The staging fold: a pure function from an episode's assessments and a criteria set to decisions.

``fold(observations, criteria)`` orders the assessments by clinical date (G1), keeps one score per
instrument and day (G2), scores them under the set's missing-item policy and rounding (C1-C3),
and hands them to the set's kind: the longitudinal stage machines of Frank et al. 1991 (SPEC §2.2)
and ACNP 2006 (§2.3) in ``longitudinal``, the NHS Talking Therapies course outcome (§2.4) in
``nhstt``, CMS159 (§2.5) in ``cms159``. The same input always gives the same output, whatever
order the rows arrive in.

The names other modules import from here (``Observation``, ``StageDecision``, the event types,
``add_months``, ``score_observation``, ``day_scores``) are re-exported from their own modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.criteria.cms159 import cms159_outcome
from domain.criteria.decisions import (
    BASELINE_BELOW,
    RECOVERY,
    RECURRENCE,
    RELAPSE,
    REMISSION,
    RESPONSE,
    SAFETY,
    STAGE_TYPES,
    StageDecision,
    safety_decision,
)
from domain.criteria.longitudinal import stage_longitudinal
from domain.criteria.nhstt import nhstt_outcome
from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import (
    Observation,
    Point,
    add_months,
    day_scores,
    score_observation,
)
from domain.errors import UnstageableInstrumentError
from domain.instruments import SAFETY_ITEM9_POSITIVE, Score, get_instrument

__all__ = [
    "BASELINE_BELOW", "RECOVERY", "RECURRENCE", "RELAPSE", "REMISSION", "RESPONSE", "SAFETY",
    "STAGE_TYPES", "FoldResult", "Observation", "Point", "StageDecision", "add_months",
    "day_scores", "fold", "score_observation", "staged_instrument",
]


@dataclass(frozen=True)
class FoldResult:
    """What a criteria set concludes from an episode: stage decisions in date order, and for the
    course-level sets (NHS TT, CMS159) the outcome object; ``scores`` maps assessment id to its
    score under the set's scoring policy; ``points``: the staged instrument's scorable points in
    clinical order, one per day (what ``domain.rules.staged_points`` gives for the same input:
    the trajectory the signals read, ADR 0031)."""

    criteria: CriteriaSet
    events: tuple[StageDecision, ...]
    outcome: Mapping[str, Any] | None
    scores: Mapping[str, Score]
    points: tuple[Point, ...] = ()


def staged_instrument(criteria: CriteriaSet, instrument: str) -> str:
    """The instrument a longitudinal set stages for a trajectory of ``instrument`` (C12).

    GAD-7 trajectories stage their PHQ-9 rows; other instruments need thresholds in the set (C11).
    Raises UnknownInstrumentError or UnstageableInstrumentError.
    """
    get_instrument(instrument)
    staged = "PHQ-9" if instrument == "GAD-7" else instrument
    if not criteria.longitudinal:
        return staged
    if criteria.thresholds(staged) is None:
        raise UnstageableInstrumentError(
            f"{criteria.id} has no thresholds for {staged}; give thresholds.{staged}."
            f"remission_below and thresholds.{staged}.episode_from", field="instrument")
    if criteria.params.get("minimal_status") == "symptom" and staged != "PHQ-9":
        raise UnstageableInstrumentError(
            f"{criteria.id} needs PHQ-9 item scores; it cannot stage {staged}", field="instrument")
    return staged


def fold(
    observations: Iterable[Observation],
    criteria: CriteriaSet,
    *,
    instrument: str = "PHQ-9",
    discharge: date | None = None,
) -> FoldResult:
    """Derive the stage decisions of ``criteria`` from an episode's valid assessments.

    ``instrument`` is the trajectory's (staged) instrument; ``discharge`` ends an NHS TT course
    (default: the last assessment's date). Returns a FoldResult. Raises the validation errors of
    score() for a malformed assessment, UnknownInstrumentError or UnstageableInstrumentError.
    """
    observations = list(observations)
    staged = staged_instrument(criteria, instrument)
    scored = day_scores(observations, criteria)
    scores = {point.id: point.score for point in scored}
    for obs in observations:  # records the day's score does not use (G2) are still scored
        if obs.assessment_id not in scores:
            scores[obs.assessment_id] = score_observation(obs, criteria)
    events = [safety_decision(p) for p in scored if SAFETY_ITEM9_POSITIVE in p.score.flags]
    staged_points = [p for p in scored if p.obs.instrument == staged and p.score.scorable]
    outcome: dict[str, Any] | None = None
    if criteria.kind == "nhstt":
        outcome = nhstt_outcome(scored, criteria, discharge)
    elif criteria.kind == "cms159":
        outcome = cms159_outcome(scored, criteria)
    elif staged_points:
        events += stage_longitudinal(staged_points, criteria, staged)
    order = {kind: position for position, kind in enumerate(STAGE_TYPES)}
    events.sort(key=lambda e: (e.date, order[e.type], e.degree or ""))
    return FoldResult(criteria, tuple(events), outcome, scores, tuple(staged_points))
