"""Fold inputs read model: per episode, what a shadow re-scoring reads (ADR 0028).

One row per episode: its clinic, the timestamp of the last event applied to it (``updated_at``,
transaction time) and, as JSON, the criteria definition in force, the staged instrument, the
discharge date and course outcome, the asserted stage decisions and the assessments, both in
the episode's own order (lists, so the order survives the sorted JSON), and whether they hold a
baseline under the episode's criteria (``domain.rules.baseline``, computed when the assessments
or the criteria change, as the cohort read model does). ``facts`` turns a row
into ``domain.rescoring.EpisodeFacts``, what ``domain.rescoring.rescore`` reads, so a run does
not decode and replay every event of every episode. Each event changes the state as the
Episode aggregate's own ``apply`` does (tested equal to ``facts_of`` the replayed aggregate).
Erased episodes' rows are deleted (``ErasureCompleted``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.criteria.fold import Observation
from domain.criteria.sets import CriteriaSet
from domain.episode import Episode
from domain.erasure import ErasureCompleted
from domain.rescoring import EpisodeFacts, StageFact
from domain.rules import baseline
from projections.base import (
    ReadModel,
    ViewCursor,
    delete_episodes,
    erased_episode_ids,
    skipped,
    to_json,
    topics_of,
)

PAGE = 1_000  # rows read per query by ``rows``


class FoldInputsView(ReadModel):
    name = "fold-inputs"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    version = 1
    tables = (
        "CREATE TABLE IF NOT EXISTS fold_inputs (episode_id TEXT PRIMARY KEY, "
        "clinic_id TEXT NOT NULL, updated_at TEXT NOT NULL, state TEXT NOT NULL)",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("fold_inputs",), erased)
            return
        episode_id, at = str(event.originator_id), event.timestamp.isoformat()
        if isinstance(event, Episode.Opened):
            state: dict[str, Any] = {"criteria": event.criteria, "instrument": event.instrument,
                                     "closed_on": None, "outcome": None, "stages": [],
                                     "assessments": [], "has_baseline": False}
            cursor.execute("INSERT INTO fold_inputs VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                           (episode_id, event.clinic_id, at, to_json(state)))
            return
        cursor.execute("SELECT state FROM fold_inputs WHERE episode_id = ?", (episode_id,))
        row = cursor.fetchone()
        if row is None:
            return
        state = json.loads(row["state"])
        if _mutate(event, state):
            state["has_baseline"] = baseline(_valid(state), CriteriaSet.from_description(
                state["criteria"]), state["instrument"]) is not None
        cursor.execute("UPDATE fold_inputs SET state = ?, updated_at = ? WHERE episode_id = ?",
                       (to_json(state), at, episode_id))

    def rows(self, after: str | None, until: str | None) -> Iterator[dict[str, Any]]:
        """Every row with an episode id in (``after``, ``until``] (canonical UUID text; None:
        unbounded), in id order, ``PAGE`` rows per query: ``episode_id``, ``clinic_id``,
        ``updated_at`` (ISO text) and ``state`` (JSON text)."""
        last = after or ""
        while True:
            with self.reading() as cursor:
                cursor.execute(
                    "SELECT episode_id, clinic_id, updated_at, state FROM fold_inputs WHERE "
                    "episode_id > ? AND episode_id <= ? ORDER BY episode_id LIMIT ?",
                    (last, until or "g", PAGE))
                page = [dict(r) for r in cursor.fetchall()]
            yield from page
            if len(page) < PAGE:
                return
            last = page[-1]["episode_id"]


def _mutate(event: Any, state: dict[str, Any]) -> bool:
    """What ``event`` changes in ``state``, as the Episode aggregate's ``apply`` does; True when
    it changed the facts the baseline rests on (assessments, criteria)."""
    entry: dict[str, Any]
    if isinstance(event, Episode.AssessmentRecorded):
        entry = {"id": event.assessment_id, "instrument": event.instrument,
                 "on": event.clinical_date.isoformat(), "items": event.items,
                 "reported_total": event.reported_total, "recorded_at": event.timestamp.isoformat(),
                 "at": event.administered_at.isoformat() if event.administered_at else None,
                 "voided": False}
        found = [n for n, a in enumerate(state["assessments"]) if a["id"] == event.assessment_id]
        if found:
            state["assessments"][found[0]] = entry  # a dict keeps the key's first place
        else:
            state["assessments"].append(entry)
        return True
    if isinstance(event, Episode.AssessmentVoided):
        for entry in state["assessments"]:
            if entry["id"] == event.assessment_id:
                entry["voided"] = True
        return True
    if isinstance(event, Episode.CriteriaAdopted):
        state["criteria"] = event.criteria
        return True
    if isinstance(event, Episode.StageEvent):
        entry = {"stage_id": event.stage_id, "type": type(event).__name__,
                 "date": event.clinical_date.isoformat(), "degree": event.degree,
                 "onset": event.onset.isoformat() if event.onset else None,
                 "assessment_id": event.assessment_id, "explanation": event.explanation,
                 "evidence": event.evidence}
        found = [n for n, s in enumerate(state["stages"]) if s["stage_id"] == event.stage_id]
        if found:
            state["stages"][found[0]] = entry
        else:
            state["stages"].append(entry)
    elif isinstance(event, Episode.StageRetracted):
        state["stages"] = [s for s in state["stages"] if s["stage_id"] != event.stage_id]
    elif isinstance(event, Episode.Closed):
        state["closed_on"], state["outcome"] = event.clinical_date.isoformat(), event.outcome
    return False


def _valid(state: dict[str, Any]) -> tuple[Observation, ...]:
    return tuple(Observation(a["id"], a["instrument"], date.fromisoformat(a["on"]),
                             tuple(a["items"]) if a["items"] is not None else None,
                             a["reported_total"], datetime.fromisoformat(a["recorded_at"]),
                             datetime.fromisoformat(a["at"]) if a["at"] else None)
                 for a in state["assessments"] if not a["voided"])


def facts(row: dict[str, Any]) -> EpisodeFacts:
    """The ``EpisodeFacts`` of one row of ``FoldInputsView.rows``: its state parsed by msgspec
    into the types the facts hold (ISO dates and datetimes, in C); a state msgspec refuses
    (NaN, Infinity, a value of another type) is read by ``json`` as before."""
    try:
        state = _STATE.decode(row["state"])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _facts_by_json(row)
    return EpisodeFacts(
        UUID(row["episode_id"]), row["clinic_id"], state.criteria, state.instrument,
        state.closed_on, state.outcome,
        tuple(StageFact(s.type, s.on, s.degree, s.onset, s.assessment_id, s.explanation,
                        s.evidence) for s in state.stages),
        tuple(Observation(a.id, a.instrument, a.on, a.items, a.reported_total, a.recorded_at,
                          a.at) for a in state.assessments if not a.voided),
        state.has_baseline)


def _facts_by_json(row: dict[str, Any]) -> EpisodeFacts:
    state = json.loads(row["state"])
    closed = state["closed_on"]
    return EpisodeFacts(
        UUID(row["episode_id"]), row["clinic_id"], state["criteria"], state["instrument"],
        date.fromisoformat(closed) if closed else None, state["outcome"],
        tuple(StageFact(s["type"], date.fromisoformat(s["date"]), s["degree"],
                        date.fromisoformat(s["onset"]) if s["onset"] else None,
                        s["assessment_id"], s["explanation"], s["evidence"])
              for s in state["stages"]),
        _valid(state), state["has_baseline"])


class _Stage(msgspec.Struct):
    """A stage entry of a row's state (``_mutate``), as ``facts`` reads it."""

    type: str
    on: date = msgspec.field(name="date")
    degree: str | None
    onset: date | None
    assessment_id: str
    explanation: str
    evidence: Any


class _Assessment(msgspec.Struct):
    """An assessment entry of a row's state (``_mutate``), as ``facts`` reads it."""

    id: str
    instrument: str
    on: date
    items: tuple[Any, ...] | None
    reported_total: Any
    recorded_at: datetime
    at: datetime | None
    voided: bool


class _State(msgspec.Struct):
    """A row's state (``FoldInputsView.apply``), as ``facts`` reads it."""

    criteria: dict[str, Any]
    instrument: str
    closed_on: date | None
    outcome: dict[str, Any] | None
    stages: list[_Stage]
    assessments: list[_Assessment]
    has_baseline: bool


_STATE = msgspec.json.Decoder(_State)
