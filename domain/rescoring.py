"""Shadow re-scoring: what an episode's history would be under other criteria (changes nothing).

``replay(events, criteria, as_of)`` takes one episode's stored events, keeps what was known at
``as_of`` (transaction time), and compares the decisions recorded then with the fold of the new
criteria over the same valid assessments. A ``Rescoring`` aggregate records each run: who asked,
when, for which criteria (full definition and hash), clinic and as-of, and its result, so a
report can be reproduced exactly; runs live in their own event store (``RescoringLog``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from domain.criteria.fold import STAGE_TYPES, fold
from domain.criteria.sets import CriteriaSet
from domain.episode import (
    AssessmentState,
    Episode,
    StageState,
    current_stage,
)
from domain.errors import DomainError

MILESTONES = ("response", "partial_remission", "remission", "recovery", "relapse")
_ORDER = {t: i for i, t in enumerate(STAGE_TYPES)}  # the fold's order within a day


class RescoringLog(Application[UUID]):
    """Where shadow runs are recorded: an event store of their own (env prefix RESCORINGS_), so
    a shadow run leaves the episodes' event store exactly as it was."""

    name = "Rescorings"


class Rescoring(Aggregate):
    """One shadow run: the request and, once done, its figures."""

    TOPIC = "outcome-ledger:Rescoring"

    class Created(Aggregate.Created):  # unused; explicit topics are all-or-nothing
        TOPIC = "outcome-ledger:Rescoring.Created"

    class Requested(Aggregate.Created):
        TOPIC = "outcome-ledger:Rescoring.Requested"
        criteria: dict[str, Any]
        clinic_id: str | None
        as_of: datetime
        recorded_by: str

    class Completed(Aggregate.Event):
        TOPIC = "outcome-ledger:Rescoring.Completed"
        episodes: int
        changed: int
        figures: dict[str, Any]

        def apply(self, aggregate: Rescoring) -> None:
            aggregate.completed = True

    def __init__(self, criteria: dict[str, Any], clinic_id: str | None, as_of: datetime,
                 recorded_by: str) -> None:
        self.criteria, self.clinic_id, self.as_of = criteria, clinic_id, as_of
        self.recorded_by = recorded_by
        self.completed = False

    @property
    def criteria_set(self) -> CriteriaSet:
        return CriteriaSet.from_description(self.criteria)


@dataclass(frozen=True)
class EpisodeRescore:
    """One episode's history now (as recorded at as-of) and under the new criteria.

    ``now``/``new``: decisions as JSON data (type, date, degree, onset, ...); ``diff``:
    ``added``, ``removed`` and ``moved`` (same type and degree, another date: ``from``/``to``);
    ``milestones_now``/``_new``: which of response, partial remission, remission (full),
    recovery, relapse the history holds, and ``evaluable`` (baseline at or above the episode
    threshold).
    """

    episode_id: UUID
    clinic_id: str
    criteria_now: dict[str, str]
    stage_now: str
    stage_new: str
    now: list[dict[str, Any]]
    new: list[dict[str, Any]]
    outcome_new: Mapping[str, Any] | None
    diff: dict[str, list[dict[str, Any]]]
    milestones_now: dict[str, bool]
    milestones_new: dict[str, bool]
    error: str | None = None

    @property
    def changed(self) -> bool:
        return any(self.diff.values()) or self.stage_now != self.stage_new


def _key(d: Mapping[str, Any]) -> tuple[Any, ...]:
    return (d["type"], d["date"], d.get("degree"), d.get("onset"))


def compare(now: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Decisions only in ``new`` (added), only in ``now`` (removed), and pairs of the same type
    and degree on another date (moved), matched in date order. Safety flags are compared too."""
    now_keys, new_keys = {_key(d) for d in now}, {_key(d) for d in new}
    removed = [d for d in now if _key(d) not in new_keys]
    added = [d for d in new if _key(d) not in now_keys]
    moved = []
    for old in list(removed):
        match = next((d for d in added if (d["type"], d.get("degree")) ==
                      (old["type"], old.get("degree"))), None)
        if match is not None:
            removed.remove(old)
            added.remove(match)
            moved.append({"type": old["type"], "degree": old.get("degree"),
                          "from": old["date"], "to": match["date"],
                          "onset_from": old.get("onset"), "onset_to": match.get("onset")})
    return {"added": added, "removed": removed, "moved": moved}


def milestones(decisions: list[dict[str, Any]], evaluable: bool) -> dict[str, bool]:
    types = {(d["type"], d.get("degree")) for d in decisions}
    return {"evaluable": evaluable,
            "response": ("ResponseReached", None) in types,
            "partial_remission": ("RemissionReached", "partial") in types,
            "remission": ("RemissionReached", "full") in types,
            "recovery": ("RecoveryConfirmed", None) in types,
            "relapse": ("RelapseDetected", None) in types}


def replay(events: Iterable[Episode.Event], criteria: CriteriaSet,
           as_of: datetime) -> EpisodeRescore | None:
    """Re-score one episode as known at ``as_of``; None if it did not exist then. A set that
    cannot stage the episode's instrument gives no new decisions and an ``error`` code."""
    state: dict[str, Any] = {"assessments": {}, "decisions": {}, "closed": None}
    opened: Episode.Opened | None = None
    criteria_now: dict[str, Any] = {}
    for event in events:
        if event.timestamp > as_of:
            break
        if isinstance(event, Episode.Opened):
            opened, criteria_now = event, event.criteria
        elif isinstance(event, Episode.CriteriaAdopted):
            criteria_now = event.criteria
        _apply(event, state)
    if opened is None:
        return None
    valid = [a.observation() for a in state["assessments"].values() if not a.voided]
    now = sorted(state["decisions"].values(),
                 key=lambda d: (d["date"], _ORDER[d["type"]], d["degree"] or ""))
    error, new, outcome = None, [], None
    try:
        result = fold(valid, criteria, instrument=opened.instrument, discharge=state["closed"])
        new = [d.as_dict() for d in result.events]
        outcome = result.outcome
    except DomainError as exc:
        error = exc.code
    evaluable_now = bool(valid) and not any(d["type"] == "BaselineBelowThreshold" for d in now)
    evaluable_new = bool(valid) and not any(d["type"] == "BaselineBelowThreshold" for d in new) \
        and criteria.longitudinal and error is None
    return EpisodeRescore(
        episode_id=opened.originator_id, clinic_id=opened.clinic_id,
        criteria_now={k: criteria_now[k] for k in ("id", "version", "hash")},
        stage_now=_stage(now), stage_new=_stage(new), now=now, new=new, outcome_new=outcome,
        diff=compare(now, new), milestones_now=milestones(now, evaluable_now),
        milestones_new=milestones(new, evaluable_new), error=error)


def _apply(event: Episode.Event, state: dict[str, Any]) -> None:
    if isinstance(event, Episode.AssessmentRecorded):
        state["assessments"][event.assessment_id] = AssessmentState(
            event.assessment_id, event.instrument, event.clinical_date, event.administered_at,
            event.items, event.reported_total, event.total, event.severity, list(event.flags),
            event.timestamp, event.recorded_by)
    elif isinstance(event, Episode.AssessmentVoided):
        state["assessments"][event.assessment_id].voided = True
    elif isinstance(event, Episode.StageEvent):
        state["decisions"][event.stage_id] = {
            "type": type(event).__name__, "date": event.clinical_date.isoformat(),
            "degree": event.degree, "onset": event.onset.isoformat() if event.onset else None,
            "assessment_id": event.assessment_id, "explanation": event.explanation}
    elif isinstance(event, Episode.StageRetracted):
        state["decisions"].pop(event.stage_id, None)
    elif isinstance(event, Episode.Closed):
        state["closed"] = event.clinical_date


def _stage(decisions: list[dict[str, Any]]) -> str:
    return current_stage([StageState("", d["type"], date.fromisoformat(d["date"]),
                                     d.get("assessment_id", ""), d.get("degree"), None)
                          for d in decisions])
