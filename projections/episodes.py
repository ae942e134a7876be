"""Episode summary read model: one row per episode, for ``GET /episodes`` and ``GET /episodes/{id}``.

Columns: clinic, patient_ref, criteria in force, staged instrument, current stage, baseline,
latest score and severity, flags (safety item, data quality), counts, version. A small JSON
``state`` per row (the criteria in force, the episode's assessments and asserted stages) lets
each event update the row from the events alone; the stage, baseline and latest score come from
the domain's rules (``domain.rules``: current_stage, staged_points with the fold's G2 timeline).
Rows are listed in opening order: by the global position of the episode's Opened event, a key
that a rebuild keeps, so a page cursor stays valid across ``outcomes projections rebuild``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date
from fractions import Fraction
from functools import singledispatch
from typing import Any
from uuid import UUID

from domain.criteria.fold import day_scores
from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Point
from domain.episode import Episode
from domain.erasure import ErasureCompleted
from domain.instruments import (
    SAFETY_ITEM9_POSITIVE,
    SAFETY_ITEM9_UNANSWERED,
    UNSCORABLE,
    points,
)
from domain.rules import Decision, current_stage, staged_points
from projections.base import (
    ReadModel,
    ViewCursor,
    assessment_facts,
    delete_episodes,
    erased_episode_ids,
    observations,
    one_of,
    skipped,
    to_json,
    topics_of,
)

DATA_QUALITY = ("TOTAL_MISMATCH", "TOTAL_ABOVE_MAX", UNSCORABLE)
COLUMNS = ("episode_id", "clinic_id", "patient_ref", "criteria", "instrument", "opened_on",
           "closed_on", "stage", "baseline", "latest", "flags", "counts", "outcome", "version",
           "opened_at", "updated_at")


class EpisodesView(ReadModel):
    name = "episodes"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    version = 2  # v2: opening position as the list key, criteria and assessment facts in state
    tables = (
        "CREATE TABLE IF NOT EXISTS episodes (position INTEGER PRIMARY KEY, "
        "episode_id TEXT UNIQUE NOT NULL, clinic_id TEXT NOT NULL, patient_ref TEXT NOT NULL, "
        "criteria TEXT NOT NULL, instrument TEXT NOT NULL, opened_on TEXT NOT NULL, "
        "closed_on TEXT, stage TEXT NOT NULL, baseline TEXT, latest TEXT, flags TEXT NOT NULL, "
        "counts TEXT NOT NULL, outcome TEXT, version INTEGER NOT NULL, opened_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, state TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS episodes_clinic ON episodes (clinic_id, position)",
        "CREATE INDEX IF NOT EXISTS episodes_patient ON episodes (patient_ref, position)",
        "CREATE INDEX IF NOT EXISTS episodes_stage ON episodes (stage, position)",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("episodes",), erased)
            return
        if isinstance(event, Episode.Opened):
            self._opened(event, cursor, position)
            return
        cursor.execute("SELECT instrument, state FROM episodes WHERE episode_id = ?",
                       (str(event.originator_id),))
        row = cursor.fetchone()
        if row is None:  # not an episode event
            return
        state = json.loads(row["state"])
        columns = {**_mutate(event, state), **_derived(event, state, row["instrument"]),
                   "state": to_json(state), "version": event.originator_version,
                   "updated_at": event.timestamp.isoformat()}
        assignments = ", ".join(f"{name} = ?" for name in columns)
        cursor.execute(f"UPDATE episodes SET {assignments} WHERE episode_id = ?",
                       (*columns.values(), str(event.originator_id)))

    def _opened(self, event: Episode.Opened, cursor: ViewCursor, position: int) -> None:
        criteria = {k: event.criteria[k] for k in ("id", "version", "hash")}
        state = {"criteria": event.criteria, "assessments": [], "stages": {}}
        cursor.execute(
            "INSERT INTO episodes (position, episode_id, clinic_id, patient_ref, criteria, "
            "instrument, opened_on, stage, flags, counts, version, opened_at, updated_at, state) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (episode_id) DO NOTHING",
            (position, str(event.originator_id), event.clinic_id, event.patient_ref,
             to_json(criteria),
             event.instrument, event.clinical_date.isoformat(), "episode",
             to_json({"safety": [], "data_quality": []}), to_json(_counts({})),
             event.originator_version, event.timestamp.isoformat(),
             event.timestamp.isoformat(), to_json(state)))

    # -- queries ----------------------------------------------------------------------------

    def get(self, episode_id: UUID) -> dict[str, Any] | None:
        """The summary of one episode, or None."""
        with self.reading() as cursor:
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM episodes WHERE episode_id = ?",
                           (str(episode_id),))
            row = cursor.fetchone()
        return _summary(row) if row else None

    def find(self, *, clinic_id: str | None = None, stage: str | None = None,
             patient_ref: str | None = None, clinics: Collection[str] | None = None,
             after: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """Summaries matching every given filter, in opening order, ``limit`` at most after the
        cursor ``after`` (the global position of an episode's Opened event, stable across a
        rebuild); returns (items, next cursor or None). ``clinics`` (the caller's) keeps only
        episodes of those clinics (none when it is empty)."""
        clause, params = one_of("clinic_id", clinics) if clinics is not None else (None, [])
        rows, after_next = self.page(
            "episodes", COLUMNS, after=after, limit=limit, where=[clause] if clause else [],
            params=params, filters=(("clinic_id = ?", clinic_id), ("stage = ?", stage),
                                    ("patient_ref = ?", patient_ref)))
        return [_summary(r) for r in rows], after_next


@singledispatch
def _mutate(event: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Update the row's JSON state for one event; returns columns the event sets directly."""
    return {}


@_mutate.register(Episode.AssessmentRecorded)
def _recorded(event: Episode.AssessmentRecorded, state: dict[str, Any]) -> dict[str, Any]:
    state["assessments"].append(assessment_facts(event))
    return {}


@_mutate.register(Episode.AssessmentVoided)
def _voided(event: Episode.AssessmentVoided, state: dict[str, Any]) -> dict[str, Any]:
    for a in state["assessments"]:
        if a["assessment_id"] == event.assessment_id:
            a["voided"] = True
    return {}


@_mutate.register(Episode.StageEvent)
def _asserted(event: Episode.StageEvent, state: dict[str, Any]) -> dict[str, Any]:
    state["stages"][event.stage_id] = {
        "type": type(event).__name__, "date": event.clinical_date.isoformat(),
        "degree": event.degree}
    return {}


@_mutate.register(Episode.StageRetracted)
def _retracted(event: Episode.StageRetracted, state: dict[str, Any]) -> dict[str, Any]:
    state["stages"].pop(event.stage_id, None)
    state["retracted"] = state.get("retracted", 0) + 1
    return {}


@_mutate.register(Episode.CriteriaAdopted)
def _adopted(event: Episode.CriteriaAdopted, state: dict[str, Any]) -> dict[str, Any]:
    state["criteria"] = event.criteria
    return {"criteria": to_json({k: event.criteria[k] for k in ("id", "version", "hash")})}


@_mutate.register(Episode.Closed)
def _closed(event: Episode.Closed, state: dict[str, Any]) -> dict[str, Any]:
    return {"closed_on": event.clinical_date.isoformat(),
            "outcome": to_json(event.outcome) if event.outcome else None}


def _counts(state: dict[str, Any]) -> dict[str, int]:
    assessments = state.get("assessments", [])
    voided = sum(1 for a in assessments if a["voided"])
    return {"assessments": len(assessments) - voided, "voided": voided,
            "stage_events": len(state.get("stages", {})),
            "retracted": state.get("retracted", 0)}


def _derived(event: Any, state: dict[str, Any], instrument: str) -> dict[str, Any]:
    """Stage (current_stage) and counts after every event; baseline, latest score (G2, G4) and
    flags after a change of the facts they rest on (the assessments or the criteria)."""
    columns = {"stage": stage_of(state), "counts": to_json(_counts(state))}
    if isinstance(event, Episode.AssessmentRecorded | Episode.AssessmentVoided
                  | Episode.CriteriaAdopted):
        columns.update(_scores(state, instrument))
    return columns


def mutate_state(event: Any, state: dict[str, Any]) -> None:
    """Update an episode's JSON state (``{"criteria", "assessments", "stages"}``, as this read
    model keeps it) for one event; what another read model reuses to follow the same facts."""
    _mutate(event, state)


def stage_of(state: dict[str, Any]) -> str:
    """The current stage of an episode's JSON state (``domain.rules.current_stage``)."""
    return current_stage([Decision(s["type"], date.fromisoformat(s["date"]), s["degree"])
                          for s in state["stages"].values()])


def state_points(state: dict[str, Any], instrument: str) -> list[Point]:
    """The staged points of an episode's JSON state: the valid assessments of ``instrument``,
    one per day, scorable, in clinical order (``domain.rules.staged_points`` under the state's
    criteria; G2)."""
    criteria = CriteriaSet.from_description(state["criteria"])
    return staged_points(observations(state["assessments"]), criteria, instrument)


def score_of(state: dict[str, Any], point: Point) -> dict[str, Any]:
    """One of ``state_points`` as the read models show a score: ``{"assessment_id", "date"
    (ISO date), "total" (points), "severity"}``."""
    [fact] = [a for a in state["assessments"] if a["assessment_id"] == point.id]
    return _score(fact)


def _staged(state: dict[str, Any], instrument: str) -> list[dict[str, Any]]:
    facts = {a["assessment_id"]: a for a in state["assessments"]}
    return [facts[p.id] for p in state_points(state, instrument)]


def _scores(state: dict[str, Any], instrument: str) -> dict[str, Any]:
    criteria = CriteriaSet.from_description(state["criteria"])
    valid = observations(state["assessments"])
    facts = {a["assessment_id"]: a for a in state["assessments"]}
    counted = [facts[p.id] for p in day_scores(valid, criteria)]  # one per instrument and day (G2)
    staged = _staged(state, instrument)
    flags = sorted({f for a in counted for f in a["flags"]})
    return {
        "baseline": to_json(_score(staged[0])) if staged else None,
        "latest": to_json(_score(staged[-1])) if staged else None,
        "flags": to_json({
            "safety": [f for f in flags if f in (SAFETY_ITEM9_POSITIVE, SAFETY_ITEM9_UNANSWERED)],
            "data_quality": [f for f in flags if f in DATA_QUALITY]}),
    }


def _score(a: dict[str, Any]) -> dict[str, Any]:
    total = a["total"]
    return {"assessment_id": a["assessment_id"], "date": a["administered_on"],
            "total": points(Fraction(total)) if total is not None else None,
            "severity": a["severity"]}


def _summary(row: Any) -> dict[str, Any]:
    data = {name: row[name] for name in COLUMNS}
    for name in ("criteria", "baseline", "latest", "flags", "counts", "outcome"):
        data[name] = json.loads(data[name]) if data[name] else None
    return data
