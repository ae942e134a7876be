"""The Episode aggregate: one treatment episode of one (pseudonymous) patient at one clinic.

Facts (``Opened``, ``AssessmentRecorded``, ``AssessmentVoided``, ``Closed``) and stage decisions
(``ResponseReached`` ... ``SafetyItemPositive``, ``StageRetracted``) are immutable events. After
every change to the facts the episode re-runs the pure fold of its criteria set over its valid
assessments (G1) and appends only the difference: decisions that no longer hold are withdrawn by a
``StageRetracted`` naming them, new ones are asserted (SPEC §3, V11). Replay never recomputes a
decision; it only re-applies what was recorded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from domain.criteria.fold import (
    FoldResult,
    Observation,
    StageDecision,
    fold,
    score_observation,
    staged_instrument,
)
from domain.criteria.sets import CriteriaSet
from domain.errors import (
    AssessmentAlreadyVoidedError,
    AssessmentNotFoundError,
    EpisodeClosedError,
    FutureDateError,
    IdempotencyConflictError,
    InvalidInputError,
    NaiveDatetimeError,
)
from domain.instruments import get_instrument
from domain.rules import current_stage

# The furthest local calendar runs ahead of UTC (UTC+14): a clinical date up to then is not future.
MAX_UTC_OFFSET = timedelta(hours=14)
ASSESSMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_State = TypeVar("_State", "AssessmentState", "StageState")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class AssessmentState:
    """An assessment as the episode holds it (``voided`` once entered in error)."""

    assessment_id: str
    instrument: str
    administered_on: date
    administered_at: datetime | None
    items: list[int | None] | None
    reported_total: int | None
    total: str | None
    severity: str | None
    flags: list[str]
    recorded_at: datetime
    recorded_by: str
    voided: bool = False
    void_reason: str | None = None

    def observation(self) -> Observation:
        return Observation(self.assessment_id, self.instrument, self.administered_on,
                           tuple(self.items) if self.items is not None else None,
                           self.reported_total, self.recorded_at, self.administered_at)

    def content(self) -> tuple[Any, ...]:
        """What idempotency compares: the same id must carry the same clinical content."""
        return (self.instrument, self.administered_on, self.administered_at, self.items,
                self.reported_total)


@dataclass
class StageState:
    """A stage decision currently asserted (not retracted)."""

    stage_id: str
    type: str
    clinical_date: date
    assessment_id: str
    degree: str | None
    onset: date | None

    @property
    def key(self) -> tuple[str, str, str | None, str | None, str]:
        return (self.type, self.clinical_date.isoformat(), self.degree, _iso(self.onset),
                self.assessment_id)


class Episode(Aggregate):
    """One treatment episode (Frank et al. 1991: the unit within which response, remission,
    recovery, relapse and recurrence are defined). Id: a UUID, never a patient identifier."""

    TOPIC = "outcome-ledger:Episode"
    # The shape of the state a Snapshot copies (assessments, stages, criteria, ...): bump it when
    # that shape changes; a snapshot of another version is ignored and the events replayed
    # (application.outcomes.EpisodeSnapshots; ADR 0025).
    class_version = 1

    class Snapshot(LibrarySnapshot):
        """The episode's state at one version (derived data, ADR 0025): the library's snapshot
        with the ``AssessmentState`` / ``StageState`` values as plain dicts (JSON) and
        ``class_version`` always recorded, so that a snapshot of another shape can be told
        apart and ignored. Its topic starts ``outcome-ledger:Episode.``: under per-patient
        encryption it is sealed with the patient's key (trust.cipher), like the events."""

        TOPIC = "outcome-ledger:Episode.Snapshot"

        @classmethod
        def take(cls, aggregate: Any) -> Any:
            snapshot = super().take(aggregate)
            state = snapshot.state
            state["class_version"] = type(aggregate).class_version
            state["assessments"] = {k: asdict(v) for k, v in aggregate.assessments.items()}
            state["stages"] = {k: asdict(v) for k, v in aggregate.stages.items()}
            return snapshot

        def mutate(self, _: None) -> Any:
            episode: Any = super().mutate(None)
            episode.assessments = {k: _restored(AssessmentState, v)
                                   for k, v in episode.assessments.items()}
            episode.stages = {k: _restored(StageState, v) for k, v in episode.stages.items()}
            return episode

    class Created(Aggregate.Created):  # unused; explicit topics are all-or-nothing
        TOPIC = "outcome-ledger:Episode.Created"

    class Opened(Aggregate.Created):
        TOPIC = "outcome-ledger:Episode.Opened"
        patient_ref: str
        clinic_id: str
        criteria: dict[str, Any]
        instrument: str
        clinical_date: date
        recorded_by: str

    class AssessmentRecorded(Aggregate.Event):
        TOPIC = "outcome-ledger:Episode.AssessmentRecorded"
        assessment_id: str
        instrument: str
        clinical_date: date
        administered_at: datetime | None
        items: list[int | None] | None
        reported_total: int | None
        total: str | None
        severity: str | None
        flags: list[str]
        source: dict[str, Any] | None
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.assessments[self.assessment_id] = AssessmentState(
                self.assessment_id, self.instrument, self.clinical_date, self.administered_at,
                self.items, self.reported_total, self.total, self.severity, list(self.flags),
                self.timestamp, self.recorded_by)

    class AssessmentVoided(Aggregate.Event):
        """An assessment entered in error: it stays in the record, marked, and stops counting."""

        TOPIC = "outcome-ledger:Episode.AssessmentVoided"
        assessment_id: str
        reason: str
        clinical_date: date
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            record = aggregate.assessments[self.assessment_id]
            record.voided, record.void_reason = True, self.reason

    class Closed(Aggregate.Event):
        """Discharge: the course ends; ``outcome`` is the course-level result, if the set has one."""

        TOPIC = "outcome-ledger:Episode.Closed"
        clinical_date: date
        outcome: dict[str, Any] | None
        stage: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.closed_on, aggregate.outcome = self.clinical_date, self.outcome

    class StageEvent(Aggregate.Event):
        """Base of every stage decision: what, when, under which criteria, from what evidence."""

        TOPIC = "outcome-ledger:Episode.StageEvent"
        stage_id: str
        clinical_date: date
        assessment_id: str
        degree: str | None
        onset: date | None
        due_date: date | None
        criteria: dict[str, str]
        rule: str
        explanation: str
        evidence: dict[str, Any]
        caused_by: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.stages[self.stage_id] = StageState(
                self.stage_id, type(self).__name__, self.clinical_date, self.assessment_id,
                self.degree, self.onset)

    class ResponseReached(StageEvent):
        TOPIC = "outcome-ledger:Episode.ResponseReached"

    class RemissionReached(StageEvent):
        TOPIC = "outcome-ledger:Episode.RemissionReached"

    class RelapseDetected(StageEvent):
        TOPIC = "outcome-ledger:Episode.RelapseDetected"

    class RecoveryConfirmed(StageEvent):
        TOPIC = "outcome-ledger:Episode.RecoveryConfirmed"

    class RecurrenceDetected(StageEvent):
        TOPIC = "outcome-ledger:Episode.RecurrenceDetected"

    class BaselineBelowThreshold(StageEvent):
        TOPIC = "outcome-ledger:Episode.BaselineBelowThreshold"

    class SafetyItemPositive(StageEvent):
        TOPIC = "outcome-ledger:Episode.SafetyItemPositive"

    class CriteriaAdopted(Aggregate.Event):
        """The clinic adopts another criteria set for this episode: from here on its decisions
        are the new set's; the ones that no longer hold are retracted by events citing this."""

        TOPIC = "outcome-ledger:Episode.CriteriaAdopted"
        adoption_id: str
        criteria: dict[str, Any]
        previous: dict[str, str]
        reason: str
        clinical_date: date
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.criteria = self.criteria

    class StageRetracted(Aggregate.Event):
        """Withdraws an earlier stage decision that no longer holds (it stays in the record)."""

        TOPIC = "outcome-ledger:Episode.StageRetracted"
        stage_id: str
        retracted_type: str
        clinical_date: date
        reason: str
        criteria: dict[str, str]
        caused_by: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            del aggregate.stages[self.stage_id]

    def __init__(self, patient_ref: str, clinic_id: str, criteria: dict[str, Any],
                 instrument: str, clinical_date: date, recorded_by: str) -> None:
        self.patient_ref, self.clinic_id = patient_ref, clinic_id
        self.criteria, self.instrument = criteria, instrument
        self.opened_on = clinical_date
        self.assessments: dict[str, AssessmentState] = {}
        self.stages: dict[str, StageState] = {}
        self.closed_on: date | None = None
        self.outcome: dict[str, Any] | None = None

    # -- commands ---------------------------------------------------------------------------

    @classmethod
    def open(cls, *, episode_id: UUID, patient_ref: str, clinic_id: str, criteria: CriteriaSet,
             instrument: str, opened_on: date, recorded_by: str, now: datetime) -> Episode:
        """Open an episode under ``criteria`` staging ``instrument`` (C12).

        Raises InvalidInputError (empty reference), FutureDateError, UnknownInstrumentError or
        UnstageableInstrumentError.
        """
        for name, value in (("patient_ref", patient_ref), ("clinic_id", clinic_id)):
            if not isinstance(value, str) or not value.strip() or len(value) > 128:
                raise InvalidInputError(f"{name} must be 1..128 characters", field=name)
        _not_future(opened_on, now, "opened_on")
        staged = staged_instrument(criteria, instrument)
        return cls._create(cls.Opened, id=episode_id, patient_ref=patient_ref,
                           clinic_id=clinic_id, criteria=criteria.describe(), instrument=staged,
                           clinical_date=opened_on, recorded_by=recorded_by)

    def record_assessment(self, *, assessment_id: str, instrument: str,
                          administered: date | datetime, items: Sequence[int | None] | None,
                          total: int | None, recorded_by: str, now: datetime,
                          source: dict[str, Any] | None = None) -> bool:
        """Record one assessment and re-stage the episode.

        ``administered``: a date, or a timezone-aware datetime (its local date is the clinical
        date). ``source`` describes an imported record (``system``, ``key_hash``, ``recorded_at``,
        ``flags``: the reader's data-quality flags, added to the assessment's). Returns False when
        the same ``assessment_id`` with the same content was recorded before (idempotent no-op),
        True otherwise. Raises EpisodeClosedError,
        IdempotencyConflictError, NaiveDatetimeError, FutureDateError and the validation errors
        of ``score()``.
        """
        if not ASSESSMENT_ID.match(assessment_id):
            raise InvalidInputError(
                "assessment_id: 1..64 letters, digits or . _ : - (starting with a letter or digit)",
                field="assessment_id")
        administered_at = None
        if isinstance(administered, datetime):
            if administered.tzinfo is None:
                raise NaiveDatetimeError("administered_on has no UTC offset",
                                         field="administered_on")
            administered_at, administered = administered, administered.date()
        _not_future(administered, now, "administered_on")
        item_list = list(items) if items is not None else None
        known = self.assessments.get(assessment_id)
        if known is not None:  # a retry is answered even after discharge
            if known.content() != (instrument, administered, administered_at, item_list, total):
                raise IdempotencyConflictError(
                    f"assessment {assessment_id} was already recorded with other content",
                    field="assessment_id")
            return False
        self._check_open()
        result = score_observation(
            Observation(assessment_id, instrument, administered, None if items is None
                        else tuple(items), total), self.criteria_set)
        self.trigger_event(
            self.AssessmentRecorded, assessment_id=assessment_id, instrument=instrument,
            clinical_date=administered, administered_at=administered_at, items=item_list,
            reported_total=total, total=None if result.value is None else str(result.value),
            severity=get_instrument(instrument).severity(result.value),
            flags=[*result.flags, *(source or {}).get("flags", [])], source=source,
            recorded_by=recorded_by)
        self._restage(f"assessment:{assessment_id}", recorded_by)
        return True

    def void_assessment(self, *, assessment_id: str, reason: str, recorded_by: str) -> None:
        """Mark an assessment as entered in error and re-stage without it.

        Raises EpisodeClosedError, AssessmentNotFoundError, AssessmentAlreadyVoidedError or
        InvalidInputError (empty reason).
        """
        self._check_open()
        record = self.assessments.get(assessment_id)
        if record is None:
            raise AssessmentNotFoundError(f"no assessment {assessment_id} in episode {self.id}",
                                          field="assessment_id")
        if record.voided:
            raise AssessmentAlreadyVoidedError(f"assessment {assessment_id} is already voided",
                                               field="assessment_id")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("give the reason the assessment was entered in error",
                                    field="reason")
        self.trigger_event(self.AssessmentVoided, assessment_id=assessment_id,
                           reason=reason.strip(), clinical_date=record.administered_on,
                           recorded_by=recorded_by)
        self._restage(f"void:{assessment_id}", recorded_by)

    def close(self, *, discharged_on: date, recorded_by: str, now: datetime) -> None:
        """Discharge: record the course outcome of the criteria set (NHS TT outcome object,
        CMS159 ``{"met": ...}``; None for the longitudinal sets) and the stage at discharge.

        Raises EpisodeClosedError, FutureDateError or InvalidInputError (before opening).
        """
        self._check_open()
        _not_future(discharged_on, now, "discharged_on")
        if discharged_on < self.opened_on:
            raise InvalidInputError(
                f"discharged_on {discharged_on} is before the episode opened ({self.opened_on})",
                field="discharged_on")
        result = self._fold(discharged_on)
        self.trigger_event(self.Closed, clinical_date=discharged_on,
                           outcome=dict(result.outcome) if result.outcome else None,
                           stage=self.stage, recorded_by=recorded_by)

    def adopt_criteria(self, *, criteria: CriteriaSet, reason: str, recorded_by: str,
                       now: datetime) -> bool:
        """Adopt ``criteria`` from now on: append CriteriaAdopted, then the retractions and new
        decisions that move the history from the old set's fold to the new one's (each citing
        the adoption). Returns False when that set (same id, version and hash) is in force.

        Raises EpisodeClosedError, InvalidInputError (empty reason) or
        UnstageableInstrumentError (the set cannot stage this episode's instrument).
        """
        self._check_open()
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("give the reason for adopting the criteria", field="reason")
        if criteria.ref() == self.criteria_ref:
            return False
        staged_instrument(criteria, self.instrument)
        adoption_id = str(uuid5(self.id, f"adoption-{self.version + 1}"))
        self.trigger_event(
            self.CriteriaAdopted, adoption_id=adoption_id, criteria=criteria.describe(),
            previous=self.criteria_ref, reason=reason.strip(), clinical_date=now.date(),
            recorded_by=recorded_by)
        self._restage(f"adoption:{adoption_id}", recorded_by)
        return True

    # -- queries ----------------------------------------------------------------------------

    @property
    def criteria_set(self) -> CriteriaSet:
        """The criteria set in force, rebuilt from the recorded definition."""
        return CriteriaSet.from_description(self.criteria)

    @property
    def criteria_ref(self) -> dict[str, str]:
        """``{"id", "version", "hash"}`` of the set in force, as recorded with its definition
        (``CriteriaSet.describe`` includes its ``ref``): the content hash is computed once, when
        the set is described, not again by every command."""
        recorded = self.criteria
        if "hash" not in recorded:
            return self.criteria_set.ref()
        return {"id": recorded["id"], "version": recorded["version"], "hash": recorded["hash"]}

    @property
    def is_closed(self) -> bool:
        return self.closed_on is not None

    @property
    def stage(self) -> str:
        """The current stage (see ``current_stage``)."""
        return current_stage(self.stages.values())

    def valid_assessments(self) -> list[AssessmentState]:
        return [a for a in self.assessments.values() if not a.voided]

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise EpisodeClosedError(f"episode {self.id} was closed on {self.closed_on}")

    def _fold(self, discharge: date | None = None) -> FoldResult:
        return fold([a.observation() for a in self.valid_assessments()], self.criteria_set,
                    instrument=self.instrument, discharge=discharge)

    def _restage(self, caused_by: str, recorded_by: str) -> None:
        """Append the difference between the asserted decisions and a fresh fold (G1)."""
        decisions = {d.key: d for d in self._fold().events}
        criteria = self.criteria_ref
        for state in sorted(self.stages.values(), key=lambda s: s.key):
            if state.key not in decisions:
                self.trigger_event(
                    self.StageRetracted, stage_id=state.stage_id, retracted_type=state.type,
                    clinical_date=state.clinical_date, criteria=criteria, caused_by=caused_by,
                    reason=f"{state.type} of {state.clinical_date} no longer holds after "
                           f"{caused_by.replace(':', ' ', 1)}", recorded_by=recorded_by)
        asserted = {s.key for s in self.stages.values()}
        for key, decision in decisions.items():
            if key not in asserted:
                self._assert(decision, criteria, caused_by, recorded_by)

    def _assert(self, d: StageDecision, criteria: dict[str, str], caused_by: str,
                recorded_by: str) -> None:
        event_class: type[Episode.StageEvent] = getattr(self, d.type)
        self.trigger_event(
            event_class, stage_id=str(uuid5(self.id, str(self.version + 1))),
            clinical_date=d.date, assessment_id=d.assessment_id, degree=d.degree,
            onset=d.onset, due_date=d.due_date, criteria=criteria, rule=d.rule,
            explanation=d.explanation, evidence=dict(d.evidence), caused_by=caused_by,
            recorded_by=recorded_by)


register_topic(Episode.Snapshot.TOPIC, Episode.Snapshot)

STAGE_EVENT_TYPES = {cls.__name__: cls for cls in (
    Episode.ResponseReached, Episode.RemissionReached, Episode.RelapseDetected,
    Episode.RecoveryConfirmed, Episode.RecurrenceDetected, Episode.BaselineBelowThreshold,
    Episode.SafetyItemPositive)}


_FIELDS: dict[type[Any], frozenset[str]] = {
    cls: frozenset(f.name for f in fields(cls)) for cls in (AssessmentState, StageState)}


def _restored(cls: type[_State], values: dict[str, Any]) -> _State:
    """``cls(**values)`` for a snapshot's ``asdict`` of an ``AssessmentState`` / ``StageState``
    (the same fields, the same values, not copied), without the keyword call: ``cls(**values)``
    costs about 2 µs an assessment, most of restoring a long episode's snapshot (ADR 0025).
    The dataclasses' ``__init__`` only assigns, so this is the same object; values without
    exactly the class's fields go through ``cls(**values)`` and its TypeError."""
    if values.keys() != _FIELDS[cls]:
        return cls(**values)
    state = object.__new__(cls)
    state.__dict__.update(values)
    return state


def _not_future(day: date, now: datetime, field: str) -> None:
    if now.tzinfo is None:
        raise NaiveDatetimeError("the clock must be timezone-aware", field="now")
    if day > (now + MAX_UTC_OFFSET).date():
        raise FutureDateError(f"{field} {day} is in the future", field=field)
