"""Cohort outcomes read model: one outcome per episode, aggregated per clinic on query.

Serves ``GET /clinics/{clinic_id}/outcomes``. Each row keeps what the episode's events say (the
criteria in force, the staged instrument, the assessments, the asserted decisions, the discharge
and its course outcome) and the episode's outcome computed from them by the domain's rules
(``domain.rules.episode_outcome``); ``outcomes()`` sums those with ``cohort_figures``, the same
function a shadow run uses for its figures.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.episode import Episode
from domain.erasure import ErasureCompleted
from domain.rules import (
    CohortFigures,
    Decision,
    EpisodeOutcome,
    baseline,
    cohort_figures,
    episode_outcome,
)
from projections.base import (
    ReadModel,
    ViewCursor,
    assessment_facts,
    delete_episodes,
    erased_episode_ids,
    observations,
    outcome_from_json,
    outcome_to_json,
    skipped,
    to_json,
    topics_of,
)


class CohortView(ReadModel):
    name = "cohort"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    version = 2  # v2: the facts the rules need in state, the outcome as an EpisodeOutcome
    tables = (
        "CREATE TABLE IF NOT EXISTS episode_outcomes (episode_id TEXT PRIMARY KEY, "
        "clinic_id TEXT NOT NULL, state TEXT NOT NULL, outcome TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS episode_outcomes_clinic ON episode_outcomes (clinic_id)",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("episode_outcomes",), erased)
            return
        episode_id = str(event.originator_id)
        if isinstance(event, Episode.Opened):
            state = {"criteria": event.criteria, "instrument": event.instrument,
                     "assessments": {}, "has_baseline": False, "stages": {}, "closed": False,
                     "course": None}
            cursor.execute("INSERT INTO episode_outcomes VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                           (episode_id, event.clinic_id, to_json(state),
                            outcome_to_json(_outcome(state))))
            return
        cursor.execute("SELECT state FROM episode_outcomes WHERE episode_id = ?", (episode_id,))
        row = cursor.fetchone()
        if row is None or not _mutate(event, state := json.loads(row["state"])):
            return
        cursor.execute("UPDATE episode_outcomes SET state = ?, outcome = ? WHERE episode_id = ?",
                       (to_json(state), outcome_to_json(_outcome(state)), episode_id))

    def outcomes(self, clinic_id: str) -> CohortFigures:
        """Cohort figures for one clinic (see ``domain.rules.CohortFigures``)."""
        with self.reading() as cursor:
            cursor.execute("SELECT outcome FROM episode_outcomes WHERE clinic_id = ?",
                           (clinic_id,))
            return cohort_figures(outcome_from_json(r["outcome"]) for r in cursor.fetchall())


def _mutate(event: Any, state: dict[str, Any]) -> bool:
    """Record what ``event`` says in ``state``; False for an event that changes nothing here."""
    if isinstance(event, Episode.AssessmentRecorded | Episode.AssessmentVoided
                  | Episode.CriteriaAdopted):
        _facts(event, state)
    elif isinstance(event, Episode.StageEvent):
        baseline = event.evidence.get("baseline") or {}
        state["stages"][event.stage_id] = {
            "type": type(event).__name__, "degree": event.degree,
            "date": event.clinical_date.isoformat(), "baseline_date": baseline.get("date")}
    elif isinstance(event, Episode.StageRetracted):
        state["stages"].pop(event.stage_id, None)
    elif isinstance(event, Episode.Closed):
        state["closed"], state["course"] = True, event.outcome
    else:
        return False
    return True


def _facts(event: Any, state: dict[str, Any]) -> None:
    """A change of the facts the baseline rests on: the assessments or the criteria (G4)."""
    if isinstance(event, Episode.AssessmentRecorded):
        state["assessments"][event.assessment_id] = assessment_facts(event)
    elif isinstance(event, Episode.AssessmentVoided):
        state["assessments"][event.assessment_id]["voided"] = True
    else:
        state["criteria"] = event.criteria
    found = baseline(observations(state["assessments"].values()),
                     CriteriaSet.from_description(state["criteria"]), state["instrument"])
    state["has_baseline"] = found is not None


def _outcome(state: dict[str, Any]) -> EpisodeOutcome:
    decisions = [Decision(s["type"], date.fromisoformat(s["date"]), s["degree"],
                          date.fromisoformat(s["baseline_date"]) if s["baseline_date"] else None)
                 for s in state["stages"].values()]
    return episode_outcome(
        criteria=CriteriaSet.from_description(state["criteria"]),
        has_baseline=state["has_baseline"], decisions=decisions, closed=state["closed"],
        course=state["course"])
