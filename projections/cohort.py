"""Cohort outcomes read model: per-episode milestones, aggregated per clinic on query.

Serves ``GET /clinics/{clinic_id}/outcomes``: episodes, evaluable episodes (a scorable baseline
at or above the episode threshold, G5), response / partial and full remission / recovery /
relapse / recurrence counts and rates (percent of evaluable episodes), and the median days from
baseline to response and to full remission (from the decisions' own evidence).
"""

from __future__ import annotations

import json
import statistics
from datetime import date
from typing import Any

from eventsourcing.sqlite import SQLiteCursor

from domain.episode import Episode
from projections.base import ReadModel, to_json

MILESTONES = ("response", "partial_remission", "remission", "recovery", "relapse", "recurrence")
_MILESTONE = {"ResponseReached": "response", "RecoveryConfirmed": "recovery",
              "RelapseDetected": "relapse", "RecurrenceDetected": "recurrence"}


class CohortView(ReadModel):
    name = "cohort"
    tables = (
        "CREATE TABLE IF NOT EXISTS episode_outcomes (episode_id TEXT PRIMARY KEY, "
        "clinic_id TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, "
        "outcome TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS episode_outcomes_clinic ON episode_outcomes (clinic_id)",
    )

    def apply(self, event: Any, cursor: SQLiteCursor, position: int) -> None:
        episode_id = str(event.originator_id)
        if isinstance(event, Episode.Opened):
            state = {"instrument": event.instrument, "scorable": {}, "stages": {}}
            cursor.execute("INSERT INTO episode_outcomes (episode_id, clinic_id, state, outcome) "
                           "VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                           (episode_id, event.clinic_id, to_json(state), to_json(_outcome(state))))
            return
        cursor.execute("SELECT state FROM episode_outcomes WHERE episode_id = ?", (episode_id,))
        row = cursor.fetchone()
        if row is None:
            return
        state = json.loads(row["state"])
        closed = 0
        if isinstance(event, Episode.AssessmentRecorded):
            if event.instrument == state["instrument"]:
                state["scorable"][event.assessment_id] = event.total is not None
        elif isinstance(event, Episode.AssessmentVoided):
            state["scorable"].pop(event.assessment_id, None)
        elif isinstance(event, Episode.StageEvent):
            baseline = event.evidence.get("baseline") or {}
            state["stages"][event.stage_id] = {
                "type": type(event).__name__, "degree": event.degree,
                "date": event.clinical_date.isoformat(), "baseline_date": baseline.get("date")}
        elif isinstance(event, Episode.StageRetracted):
            state["stages"].pop(event.stage_id, None)
        elif isinstance(event, Episode.Closed):
            closed = 1
        cursor.execute("UPDATE episode_outcomes SET state = ?, outcome = ?, "
                       "closed = MAX(closed, ?) WHERE episode_id = ?",
                       (to_json(state), to_json(_outcome(state)), closed, episode_id))

    def outcomes(self, clinic_id: str) -> dict[str, Any]:
        """Cohort figures for one clinic (shape in the module docstring)."""
        with self.reading() as cursor:
            cursor.execute("SELECT closed, outcome FROM episode_outcomes WHERE clinic_id = ?",
                           (clinic_id,))
            rows = [(r["closed"], json.loads(r["outcome"])) for r in cursor.fetchall()]
        evaluable = [o for _, o in rows if o["evaluable"]]
        counts = {m: sum(1 for o in evaluable if o[m]) for m in MILESTONES}
        return {
            "clinic_id": clinic_id,
            "episodes": len(rows),
            "closed": sum(closed for closed, _ in rows),
            "below_threshold": sum(1 for _, o in rows if o["below_threshold"]),
            "evaluable": len(evaluable),
            "counts": counts,
            "rates": {m: round(100 * n / len(evaluable), 1) if evaluable else None
                      for m, n in counts.items()},
            "median_days_to_response": _median([o["days_to_response"] for o in evaluable]),
            "median_days_to_remission": _median([o["days_to_remission"] for o in evaluable]),
        }


def _outcome(state: dict[str, Any]) -> dict[str, Any]:
    """An episode's milestones from its asserted decisions (first occurrence of each)."""
    stages = sorted(state["stages"].values(), key=lambda s: s["date"])
    below = any(s["type"] == "BaselineBelowThreshold" for s in stages)
    outcome: dict[str, Any] = {"below_threshold": below,
                               "evaluable": not below and any(state["scorable"].values()),
                               **dict.fromkeys(MILESTONES, False),
                               "days_to_response": None, "days_to_remission": None}
    for s in stages:
        if s["type"] == "RemissionReached":
            milestone = "remission" if s["degree"] == "full" else "partial_remission"
        else:
            milestone = _MILESTONE.get(s["type"], "")
        if not milestone or outcome[milestone]:
            continue
        outcome[milestone] = True
        days = _days(s["baseline_date"], s["date"])
        if milestone == "response":
            outcome["days_to_response"] = days
        elif milestone == "remission":
            outcome["days_to_remission"] = days
    return outcome


def _days(start: str | None, end: str) -> int | None:
    return (date.fromisoformat(end) - date.fromisoformat(start)).days if start else None


def _median(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
