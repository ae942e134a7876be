"""Cohort outcomes read model: one outcome per episode, aggregated per clinic on query.

Serves ``GET /clinics/{clinic_id}/outcomes`` and the clinic outcomes page. Each row keeps what
the episode's events say (the criteria in force, the staged instrument, the assessments, the
asserted decisions, the discharge and its course outcome) in ``state``, the discharge date in
``discharged_on`` and the episode's outcome computed from them by the domain's rules
(``domain.rules.episode_outcome``) one field a column, so a query reads no JSON but a closed NHS
Talking Therapies course's outcome. ``outcomes()`` and ``outcomes_by_month()`` sum those with
``cohort_figures``, the same function a shadow run uses for its figures; the database groups
alike outcomes first (``COUNT(*)``), so Python builds one ``EpisodeOutcome`` per distinct outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date
from itertools import repeat
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
    skipped,
    to_json,
    topics_of,
)

# The outcome's fields kept as columns (``domain.rules.EpisodeOutcome``; booleans as 0/1, day
# counts as integers or NULL); ``course`` is the one JSON column (NULL but for a closed NHS TT
# course).
FLAGS = ("closed", "below_threshold", "evaluable", "talking_therapies", "response",
         "partial_remission", "remission", "recovery", "relapse", "recurrence")
DAYS = ("days_to_response", "days_to_remission")
OUTCOME_COLUMNS = (*FLAGS, *DAYS, "course")


class CohortView(ReadModel):
    name = "cohort"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    # v2: the facts the rules need in state, the outcome as an EpisodeOutcome; v3: the discharge
    # date and month, the outcome one field a column (figures by month of discharge, no JSON)
    version = 3
    tables = (
        "CREATE TABLE IF NOT EXISTS episode_outcomes (episode_id TEXT PRIMARY KEY, "
        "clinic_id TEXT NOT NULL, state TEXT NOT NULL, discharged_on TEXT, discharge_month TEXT, "
        + ", ".join(f"{name} INTEGER NOT NULL" for name in FLAGS) + ", "
        + ", ".join(f"{name} INTEGER" for name in DAYS) + ", course TEXT)",
        "CREATE INDEX IF NOT EXISTS episode_outcomes_clinic ON episode_outcomes (clinic_id)",
        # Covers the figures' query in its GROUP BY order: no table read, no sort.
        "CREATE INDEX IF NOT EXISTS episode_outcomes_figures ON episode_outcomes (clinic_id, "
        f"discharge_month, {', '.join(OUTCOME_COLUMNS)})",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("episode_outcomes",), erased)
            return
        episode_id = str(event.originator_id)
        if isinstance(event, Episode.Opened):
            state: dict[str, Any] = {
                "criteria": event.criteria, "instrument": event.instrument, "assessments": {},
                "has_baseline": False, "stages": {}, "closed": False, "course": None,
                "discharged_on": None}
            cursor.execute(f"INSERT INTO episode_outcomes VALUES (?,?,?,?,?,{_MARKS}) "
                           "ON CONFLICT DO NOTHING",
                           (episode_id, event.clinic_id, to_json(state), None, None,
                            *_columns(_outcome(state))))
            return
        cursor.execute("SELECT state FROM episode_outcomes WHERE episode_id = ?", (episode_id,))
        row = cursor.fetchone()
        if row is None or not _mutate(event, state := json.loads(row["state"])):
            return
        discharged: str | None = state.get("discharged_on")
        cursor.execute("UPDATE episode_outcomes SET state = ?, discharged_on = ?, "
                       f"discharge_month = ?, {_SETS} WHERE episode_id = ?",
                       (to_json(state), discharged, discharged[:7] if discharged else None,
                        *_columns(_outcome(state)), episode_id))

    def outcomes(self, clinic_id: str) -> CohortFigures:
        """Cohort figures for one clinic, every episode (open or closed) counted (see
        ``domain.rules.CohortFigures``: rates in percent of evaluable episodes, medians in
        days); all zero for a clinic without episodes."""
        groups = self._groups(clinic_id)
        return cohort_figures(_expanded(g for rows in groups.values() for g in rows))

    def outcomes_by_month(self, clinic_id: str) -> list[tuple[str, CohortFigures]]:
        """The figures of the clinic's closed episodes grouped by the month of their discharge
        date (``discharged_on``, the Closed event's clinical date), oldest first:
        ``[("2026-03", CohortFigures), ...]``; months without a discharge are left out, open
        episodes are in none. Empty when no episode of the clinic is closed."""
        return self.overview(clinic_id)[1]

    def overview(self, clinic_id: str) -> tuple[CohortFigures, list[tuple[str, CohortFigures]]]:
        """``(outcomes(clinic_id), outcomes_by_month(clinic_id))`` from one query (the
        outcomes page shows both)."""
        groups = self._groups(clinic_id)
        everyone = cohort_figures(_expanded(g for rows in groups.values() for g in rows))
        months = sorted(month for month in groups if month is not None)
        return everyone, [(month, cohort_figures(_expanded(groups[month]))) for month in months]

    def _groups(self, clinic_id: str) -> dict[str | None, list[tuple[EpisodeOutcome, int]]]:
        """Month of discharge (None: open) -> [(an outcome, how many episodes have it)]: one
        grouped query on the covering index, one EpisodeOutcome per distinct outcome."""
        groups: dict[str | None, list[tuple[EpisodeOutcome, int]]] = {}
        known: dict[tuple[Any, ...], EpisodeOutcome] = {}
        with self.reading() as cursor:
            cursor.execute(
                f"SELECT discharge_month, {_COLUMNS}, COUNT(*) AS n FROM episode_outcomes "
                f"WHERE clinic_id = ? GROUP BY discharge_month, {_COLUMNS}", (clinic_id,))
            for row in cursor.fetchall():
                values = tuple(row[name] for name in OUTCOME_COLUMNS)
                outcome = known.get(values)
                if outcome is None:
                    outcome = known[values] = _outcome_of(values)
                groups.setdefault(row["discharge_month"], []).append((outcome, int(row["n"])))
        return groups


_COLUMNS = ", ".join(OUTCOME_COLUMNS)
_MARKS = ",".join("?" * len(OUTCOME_COLUMNS))
_SETS = ", ".join(f"{name} = ?" for name in OUTCOME_COLUMNS)


def _columns(outcome: EpisodeOutcome) -> tuple[Any, ...]:
    """The outcome's column values, in ``OUTCOME_COLUMNS`` order."""
    return (*(int(getattr(outcome, name)) for name in FLAGS),
            *(getattr(outcome, name) for name in DAYS),
            to_json(outcome.course) if outcome.course is not None else None)


def _outcome_of(values: tuple[Any, ...]) -> EpisodeOutcome:
    """The EpisodeOutcome whose ``_columns`` are ``values``."""
    flags, days, course = values[:len(FLAGS)], values[len(FLAGS):-1], values[-1]
    return EpisodeOutcome(**{name: bool(v) for name, v in zip(FLAGS, flags, strict=True)},
                          **dict(zip(DAYS, days, strict=True)),
                          course=json.loads(course) if course else None)


def _expanded(groups: Iterable[tuple[EpisodeOutcome, int]]) -> Iterator[EpisodeOutcome]:
    """Each outcome as many times as episodes have it (what ``cohort_figures`` counts)."""
    for outcome, count in groups:
        yield from repeat(outcome, count)


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
        state["discharged_on"] = event.clinical_date.isoformat()
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
