"""Shadow re-scoring: what an episode's history would be under other criteria (changes nothing).

``replay(events, criteria, as_of)`` rebuilds one episode as it was known at ``as_of`` (transaction
time) with the aggregate's own event replay (each stored event's ``mutate``, as the library's
repository does), and compares the decisions recorded then with the fold of the new criteria over
the same valid assessments. Both sides are counted by the same rules as the clinic's figures
(``domain.rules.episode_outcome``). A ``Rescoring`` aggregate records each run: who asked, when,
for which criteria (full definition and hash), clinic and as-of, and its result, so a report can
be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.criteria.fold import STAGE_TYPES, Observation, fold
from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import scoring
from domain.episode import Episode
from domain.errors import DomainError
from domain.rules import Decision, EpisodeOutcome, baseline, current_stage, episode_outcome

_ORDER = {t: i for i, t in enumerate(STAGE_TYPES)}  # the fold's order within a day


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

    @classmethod
    def request(cls, *, criteria: CriteriaSet, clinic_id: str | None, as_of: datetime,
                recorded_by: str) -> Rescoring:
        """A new run of ``criteria`` over one clinic's episodes (all when None) as known at
        ``as_of`` (timezone-aware transaction time), requested by ``recorded_by``."""
        return cls._create(cls.Requested, id=uuid4(), criteria=criteria.describe(),
                           clinic_id=clinic_id, as_of=as_of, recorded_by=recorded_by)

    def complete(self, *, episodes: int, changed: int, figures: dict[str, Any]) -> None:
        """Record the run's result (once: a completed run is left as it is)."""
        if not self.completed:
            self.trigger_event(self.Completed, episodes=episodes, changed=changed,
                               figures=figures)

    @property
    def criteria_set(self) -> CriteriaSet:
        return CriteriaSet.from_description(self.criteria)


@dataclass(frozen=True)
class EpisodeRescore:
    """One episode's history now (as recorded at as-of) and under the new criteria.

    ``now``/``new``: decisions as JSON data (type, date, degree, onset, ...); ``diff``:
    ``added``, ``removed`` and ``moved`` (same type and degree, another date: ``from``/``to``);
    ``milestones_now``/``_new``: the episode's outcome on each side as the cohort figures count
    it (``domain.rules.EpisodeOutcome``: evaluable, response ... recurrence, NHS TT course).
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
    milestones_now: EpisodeOutcome
    milestones_new: EpisodeOutcome
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


def as_known_at(events: Iterable[Episode.Event], as_of: datetime) -> tuple[
        Episode | None, list[Episode.Event]]:
    """The episode rebuilt from its events recorded up to ``as_of`` by the aggregate's own
    replay (``event.mutate``), and those events; (None, []) if it did not exist then."""
    episode: Episode | None = None
    known: list[Episode.Event] = []
    for event in events:
        if event.timestamp > as_of:
            break
        episode = event.mutate(episode)
        known.append(event)
    return episode, known


@dataclass(frozen=True)
class StageFact:
    """A stage decision an episode asserts, as a re-scoring reads it (a StageEvent's fields;
    ``type`` its class name). Fits ``domain.rules.Staged``."""

    type: str
    clinical_date: date
    degree: str | None
    onset: date | None
    assessment_id: str
    explanation: str
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class EpisodeFacts:
    """What re-scoring one episode reads: its id and clinic, the criteria definition in force
    (``CriteriaSet.describe``), the staged instrument, the discharge date and course outcome,
    the asserted decisions (in the episode's order) and the valid assessments as the fold sees
    them (in the episode's order); ``has_baseline``: whether they hold a baseline under the
    episode's own criteria (``domain.rules.baseline``; G4)."""

    episode_id: UUID
    clinic_id: str
    criteria: dict[str, Any]
    instrument: str
    closed_on: date | None
    outcome: dict[str, Any] | None
    stages: tuple[StageFact, ...]
    valid: tuple[Observation, ...]
    has_baseline: bool


def facts_of(episode: Episode, known: list[Episode.Event]) -> EpisodeFacts:
    """The facts of ``episode`` rebuilt by ``as_known_at`` from ``known`` (its events)."""
    recorded = {e.stage_id: e for e in known if isinstance(e, Episode.StageEvent)}
    stages = tuple(StageFact(type(e).__name__, e.clinical_date, e.degree, e.onset,
                             e.assessment_id, e.explanation, e.evidence)
                   for e in (recorded[stage_id] for stage_id in episode.stages))
    valid = tuple(a.observation() for a in episode.valid_assessments())
    return EpisodeFacts(episode.id, episode.clinic_id, episode.criteria, episode.instrument,
                        episode.closed_on, episode.outcome, stages, valid,
                        baseline(valid, episode.criteria_set, episode.instrument) is not None)


def replay(events: Iterable[Episode.Event], criteria: CriteriaSet,
           as_of: datetime) -> EpisodeRescore | None:
    """Re-score one episode as known at ``as_of``; None if it did not exist then. A set that
    cannot stage the episode's instrument gives no new decisions and an ``error`` code."""
    episode, known = as_known_at(events, as_of)
    return None if episode is None else rescore(facts_of(episode, known), criteria)


def rescore(facts: EpisodeFacts, criteria: CriteriaSet) -> EpisodeRescore:
    """The re-scoring of one episode's ``facts`` under ``criteria`` (the fold and comparison
    half of ``replay``; ``facts`` from the events by ``facts_of``, or from a read model)."""
    now = sorted((_recorded(s) for s in facts.stages),
                 key=lambda d: (d["date"], _ORDER[d["type"]], d["degree"] or ""))
    valid = list(facts.valid)
    closed = facts.closed_on is not None
    error, new, outcome, decisions_new = None, [], None, []
    try:
        result = fold(valid, criteria, instrument=facts.instrument, discharge=facts.closed_on)
        new = [d.as_dict() for d in result.events]
        outcome = result.outcome
        decisions_new = [Decision.of(d.type, d.date, d.degree, d.evidence) for d in result.events]
    except DomainError as exc:
        error = exc.code
    criteria_now = CriteriaSet.from_description(facts.criteria)
    now_outcome = episode_outcome(
        criteria=criteria_now, has_baseline=facts.has_baseline,
        decisions=[Decision.of(s.type, s.clinical_date, s.degree, s.evidence)
                   for s in facts.stages], closed=closed, course=facts.outcome)
    # The baseline (G4) depends on a set only through its scoring (the first scorable point,
    # ``domain.criteria.timeline.score_observation``): under the same scoring both sides share it.
    has_baseline = error is None and (
        facts.has_baseline if scoring(criteria) == scoring(criteria_now)
        else baseline(valid, criteria, facts.instrument) is not None)
    new_outcome = episode_outcome(criteria=criteria, decisions=decisions_new, closed=closed,
                                  course=outcome, has_baseline=has_baseline)
    return EpisodeRescore(
        episode_id=facts.episode_id, clinic_id=facts.clinic_id,
        criteria_now={k: facts.criteria[k] for k in ("id", "version", "hash")},
        stage_now=current_stage(facts.stages),
        stage_new=current_stage(decisions_new), now=now, new=new, outcome_new=outcome,
        diff=compare(now, new), milestones_now=now_outcome, milestones_new=new_outcome,
        error=error)


def _recorded(event: StageFact) -> dict[str, Any]:
    """A recorded decision in the shape ``compare`` reads (and the results store keeps)."""
    return {"type": event.type, "date": event.clinical_date.isoformat(),
            "degree": event.degree, "onset": event.onset.isoformat() if event.onset else None,
            "assessment_id": event.assessment_id, "explanation": event.explanation}
