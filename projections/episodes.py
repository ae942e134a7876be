"""Episode summary read model: one row per episode, for ``GET /episodes`` and ``GET /episodes/{id}``.

Columns: clinic, patient_ref, criteria in force, staged instrument, current stage, baseline,
latest score and severity, flags (safety item, data quality), counts, version. A small JSON
``state`` per row (the episode's assessments and asserted stages) lets each event update the row
from the events alone.
"""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from functools import singledispatch
from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteCursor

from domain.episode import Episode, StageState, current_stage
from domain.instruments import (
    SAFETY_ITEM9_POSITIVE,
    SAFETY_ITEM9_UNANSWERED,
    UNSCORABLE,
    points,
)
from projections.base import ReadModel, to_json

DATA_QUALITY = ("TOTAL_MISMATCH", "TOTAL_ABOVE_MAX", UNSCORABLE)
COLUMNS = ("episode_id", "clinic_id", "patient_ref", "criteria", "instrument", "opened_on",
           "closed_on", "stage", "baseline", "latest", "flags", "counts", "outcome", "version",
           "opened_at", "updated_at")


class EpisodesView(ReadModel):
    name = "episodes"
    tables = (
        "CREATE TABLE IF NOT EXISTS episodes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "episode_id TEXT UNIQUE NOT NULL, clinic_id TEXT NOT NULL, patient_ref TEXT NOT NULL, "
        "criteria TEXT NOT NULL, instrument TEXT NOT NULL, opened_on TEXT NOT NULL, "
        "closed_on TEXT, stage TEXT NOT NULL, baseline TEXT, latest TEXT, flags TEXT NOT NULL, "
        "counts TEXT NOT NULL, outcome TEXT, version INTEGER NOT NULL, opened_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, state TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS episodes_clinic ON episodes (clinic_id, seq)",
        "CREATE INDEX IF NOT EXISTS episodes_patient ON episodes (patient_ref, seq)",
        "CREATE INDEX IF NOT EXISTS episodes_stage ON episodes (stage, seq)",
    )

    def apply(self, event: Any, cursor: SQLiteCursor, position: int) -> None:
        if isinstance(event, Episode.Opened):
            self._opened(event, cursor)
            return
        cursor.execute("SELECT instrument, state FROM episodes WHERE episode_id = ?",
                       (str(event.originator_id),))
        row = cursor.fetchone()
        if row is None:  # not an episode event
            return
        state = json.loads(row["state"])
        columns = {**_mutate(event, state), **_derived(state, row["instrument"]),
                   "state": to_json(state), "version": event.originator_version,
                   "updated_at": event.timestamp.isoformat()}
        assignments = ", ".join(f"{name} = ?" for name in columns)
        cursor.execute(f"UPDATE episodes SET {assignments} WHERE episode_id = ?",
                       (*columns.values(), str(event.originator_id)))

    def _opened(self, event: Episode.Opened, cursor: SQLiteCursor) -> None:
        criteria = {k: event.criteria[k] for k in ("id", "version", "hash")}
        cursor.execute(
            "INSERT INTO episodes (episode_id, clinic_id, patient_ref, criteria, instrument, "
            "opened_on, stage, flags, counts, version, opened_at, updated_at, state) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (episode_id) DO NOTHING",
            (str(event.originator_id), event.clinic_id, event.patient_ref, to_json(criteria),
             event.instrument, event.clinical_date.isoformat(), "episode",
             to_json({"safety": [], "data_quality": []}), to_json(_counts({})),
             event.originator_version, event.timestamp.isoformat(),
             event.timestamp.isoformat(), to_json({"assessments": [], "stages": {}})))

    # -- queries ----------------------------------------------------------------------------

    def get(self, episode_id: UUID) -> dict[str, Any] | None:
        """The summary of one episode, or None."""
        with self.reading() as cursor:
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM episodes WHERE episode_id = ?",
                           (str(episode_id),))
            row = cursor.fetchone()
        return _summary(row) if row else None

    def find(self, *, clinic_id: str | None = None, stage: str | None = None,
             patient_ref: str | None = None, after: int = 0,
             limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """Summaries matching every given filter, in opening order, ``limit`` at most after the
        cursor ``after``; returns (items, next cursor or None)."""
        where: list[str] = ["seq > ?"]
        params: list[Any] = [after]
        for column, value in (("clinic_id", clinic_id), ("stage", stage),
                              ("patient_ref", patient_ref)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        with self.reading() as cursor:
            cursor.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM episodes WHERE "
                           f"{' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, limit + 1))
            rows = cursor.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_summary(r) for r in rows], (rows[-1]["seq"] if more else None)


@singledispatch
def _mutate(event: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Update the row's JSON state for one event; returns columns the event sets directly."""
    return {}


@_mutate.register(Episode.AssessmentRecorded)
def _recorded(event: Episode.AssessmentRecorded, state: dict[str, Any]) -> dict[str, Any]:
    state["assessments"].append({
        "assessment_id": event.assessment_id, "instrument": event.instrument,
        "date": event.clinical_date.isoformat(), "total": event.total,
        "severity": event.severity, "flags": event.flags, "voided": False})
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


def _derived(state: dict[str, Any], instrument: str) -> dict[str, Any]:
    """Stage, baseline, latest score and flags from the episode's valid assessments (G2, G4)."""
    latest_per_day: dict[tuple[str, str], dict[str, Any]] = {}
    for a in state["assessments"]:
        if not a["voided"]:
            latest_per_day[(a["instrument"], a["date"])] = a  # later records amend (G2)
    valid = sorted(latest_per_day.values(), key=lambda a: a["date"])
    staged = [a for a in valid if a["instrument"] == instrument and a["total"] is not None]
    flags = sorted({f for a in valid for f in a["flags"]})
    stages = [StageState(sid, s["type"], date.fromisoformat(s["date"]), "", s["degree"], None)
              for sid, s in state["stages"].items()]
    return {
        "stage": current_stage(stages),
        "baseline": to_json(_score(staged[0])) if staged else None,
        "latest": to_json(_score(staged[-1])) if staged else None,
        "flags": to_json({
            "safety": [f for f in flags if f in (SAFETY_ITEM9_POSITIVE, SAFETY_ITEM9_UNANSWERED)],
            "data_quality": [f for f in flags if f in DATA_QUALITY]}),
        "counts": to_json(_counts(state)),
    }


def _score(a: dict[str, Any]) -> dict[str, Any]:
    return {"assessment_id": a["assessment_id"], "date": a["date"],
            "total": points(Fraction(a["total"])), "severity": a["severity"]}


def _summary(row: Any) -> dict[str, Any]:
    data = {name: row[name] for name in COLUMNS}
    for name in ("criteria", "baseline", "latest", "flags", "counts", "outcome"):
        data[name] = json.loads(data[name]) if data[name] else None
    return data
