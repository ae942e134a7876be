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
from fractions import Fraction
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from domain import alerts as alerting
from domain.alerts import AlertState
from domain.criteria.fold import (
    FoldResult,
    Observation,
    Point,
    StageDecision,
    fold,
    score_observation,
    staged_instrument,
)
from domain.criteria.sets import CriteriaSet
from domain.errors import (
    AlertNotFoundError,
    AlertStateError,
    AssessmentAlreadyVoidedError,
    AssessmentNotFoundError,
    EpisodeClosedError,
    FutureDateError,
    IdempotencyConflictError,
    InvalidInputError,
    NaiveDatetimeError,
)
from domain.instruments import get_instrument, points
from domain.rules import current_stage, staged_points
from domain.signals.curves import RecoveryCurve
from domain.signals.evaluate import Signal, current_signal, in_decision_window, safety_positive
from domain.signals.packs import BUILTIN_PACKS, RulePack, get_rule_pack
from domain.signals.watch import signal_packs

# The furthest local calendar runs ahead of UTC (UTC+14): a clinical date up to then is not future.
MAX_UTC_OFFSET = timedelta(hours=14)
ASSESSMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_State = TypeVar("_State", "AssessmentState", "StageState", AlertState)


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
    # 2: alerts, signals and watching (ADR 0031).
    class_version = 2

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
            state["alerts"] = {k: asdict(v) for k, v in aggregate.alerts.items()}
            return snapshot

        def mutate(self, _: None) -> Any:
            episode: Any = super().mutate(None)
            episode.assessments = {k: _restored(AssessmentState, v)
                                   for k, v in episode.assessments.items()}
            episode.stages = {k: _restored(StageState, v) for k, v in episode.stages.items()}
            episode.alerts = {k: _restored(AlertState, v) for k, v in episode.alerts.items()}
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

    # -- alerts (ADR 0031) ------------------------------------------------------------------

    class AlertRaised(Aggregate.Event):
        """An alert: ``kind`` safety | off_track | overdue, raised on ``clinical_date`` (the
        assessment's date, or the day of the overdue sweep), resting on ``assessment_id`` (None
        for an overdue alert of an episode without assessments), under ``rule`` (the pack's
        ``{"id", "version", "hash"}``), with the ``explanation`` a clinician reads and the
        ``evidence``; ``caused_by`` names the command ("assessment:<id>", "void:<id>",
        "adoption:<id>", "watch:<n>", "overdue:<date>")."""

        TOPIC = "outcome-ledger:Episode.AlertRaised"
        alert_id: str
        kind: str
        clinical_date: date
        assessment_id: str | None
        rule: dict[str, str]
        explanation: str
        evidence: dict[str, Any]
        caused_by: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.alerts[self.alert_id] = AlertState(
                self.alert_id, self.kind, self.clinical_date, self.assessment_id, self.rule,
                self.explanation, self.evidence, self.timestamp, self.recorded_by)
            if self.kind == alerting.OFF_TRACK:
                aggregate.signals[self.rule["id"]] = "not_on_track"

    class AlertAcknowledged(Aggregate.Event):
        """A clinician saw the alert and acted: ``action`` (one of domain.alerts.ACTIONS) and
        a free-text ``note`` (may be ""); who = ``recorded_by``, when = the timestamp."""

        TOPIC = "outcome-ledger:Episode.AlertAcknowledged"
        alert_id: str
        action: str
        note: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            alert = aggregate.alerts[self.alert_id]
            alert.status, alert.action, alert.note = alerting.ACKNOWLEDGED, self.action, self.note
            alert.acknowledged_by, alert.acknowledged_at = self.recorded_by, self.timestamp

    class AlertResolved(Aggregate.Event):
        """The alert needs nothing more: ``reason`` (a clinician's, or "assessment <id>
        recorded on <date>" for an overdue alert the next scorable assessment dated after its
        ``last_on`` resolves)."""

        TOPIC = "outcome-ledger:Episode.AlertResolved"
        alert_id: str
        reason: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            alert = aggregate.alerts[self.alert_id]
            alert.status, alert.resolution = alerting.RESOLVED, self.reason
            alert.resolved_by, alert.resolved_at = self.recorded_by, self.timestamp

    class SupportReviewRecorded(Aggregate.Event):
        """A clinical support checklist (domain.alerts.SUPPORT_DOMAINS, each ``{"rating": 1..5,
        "note"}``) on ``clinical_date``, after the alert ``alert_id`` (or None)."""

        TOPIC = "outcome-ledger:Episode.SupportReviewRecorded"
        review_id: str
        alert_id: str | None
        clinical_date: date
        domains: dict[str, dict[str, Any]]
        recorded_by: str

    class BackOnTrack(Aggregate.Event):
        """A watching pack's signal is on track again after a not-on-track one (``rule``: the
        pack's ref); ``alert_ids``: its off-track alerts not yet resolved (they stay open: a
        clinician resolves them). With ``evidence`` ``{"withdrawn": true}`` the signal was
        withdrawn instead (the assessment it rested on, ``assessment_id``, was voided and no
        point gives a signal): the pack's signal is then "cleared", not "on_track"."""

        TOPIC = "outcome-ledger:Episode.BackOnTrack"
        rule: dict[str, str]
        assessment_id: str
        clinical_date: date
        explanation: str
        evidence: dict[str, Any]
        alert_ids: list[str]
        caused_by: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.signals[self.rule["id"]] = (
                "cleared" if self.evidence.get("withdrawn") else "on_track")

    class SignalsWatched(Aggregate.Event):
        """The rule packs that watch this episode from now on (``packs``: each pack's
        describe()) and the clinic's recovery curve (``curve``: its describe(), or None)."""

        TOPIC = "outcome-ledger:Episode.SignalsWatched"
        packs: list[dict[str, Any]]
        curve: dict[str, Any] | None
        reason: str
        recorded_by: str

        def apply(self, aggregate: Episode) -> None:
            aggregate.watching = {"packs": self.packs, "curve": self.curve}

    def __init__(self, patient_ref: str, clinic_id: str, criteria: dict[str, Any],
                 instrument: str, clinical_date: date, recorded_by: str) -> None:
        self.patient_ref, self.clinic_id = patient_ref, clinic_id
        self.criteria, self.instrument = criteria, instrument
        self.opened_on = clinical_date
        self.assessments: dict[str, AssessmentState] = {}
        self.stages: dict[str, StageState] = {}
        self.closed_on: date | None = None
        self.outcome: dict[str, Any] | None = None
        self.alerts: dict[str, AlertState] = {}
        # The latest signal of each watching pack (by pack id) that raised an off-track alert
        # or a BackOnTrack: "not_on_track" | "on_track" | "cleared" (withdrawn after a void).
        self.signals: dict[str, str] = {}
        # SignalsWatched's {"packs", "curve"}; None: the defaults (ADR 0031).
        self.watching: dict[str, Any] | None = None

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
        caused_by = f"assessment:{assessment_id}"
        points = self._restage(caused_by, recorded_by)
        self._alert_on_record(self.assessments[assessment_id], points, caused_by, recorded_by)
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
        points = self._restage(f"void:{assessment_id}", recorded_by)
        if self._stages_signals(record):
            self._watch_signals(points, f"void:{assessment_id}", recorded_by,
                                changed=record.administered_on, voided=record)

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
        points = self._restage(f"adoption:{adoption_id}", recorded_by)
        self._watch_signals(points, f"adoption:{adoption_id}", recorded_by)
        return True

    def watch_signals(self, *, packs: Sequence[RulePack], curve: RecoveryCurve | None,
                      reason: str, recorded_by: str) -> bool:
        """Watch the episode with ``packs`` (and the clinic's recovery ``curve``) from now on:
        SignalsWatched, then the signals re-evaluated under them (an off-track alert or a
        BackOnTrack may follow, caused by "watch:<version>"). Returns False when exactly these
        packs and curve watch it already.

        Raises EpisodeClosedError, InvalidInputError (empty reason).
        """
        self._check_open()
        why = alerting.text(reason, "reason", required=True)
        chosen = {"packs": [p.describe() for p in packs],
                  "curve": curve.describe() if curve is not None else None}
        if chosen == self.watching:
            return False
        self.trigger_event(self.SignalsWatched, packs=chosen["packs"], curve=chosen["curve"],
                           reason=why, recorded_by=recorded_by)
        self._watch_signals(self._staged_points(), f"watch:{self.version}", recorded_by)
        return True

    def acknowledge_alert(self, *, alert_id: str, action: str, note: str,
                          recorded_by: str) -> None:
        """Acknowledge an open alert: the ``action`` taken (domain.alerts.ACTIONS) and a
        ``note`` (free text, may be ""). Allowed after discharge (the record is completed).

        Raises InvalidInputError (unknown action, note over 2,000 characters),
        AlertNotFoundError, AlertStateError (already acknowledged or resolved).
        """
        chosen, text = alerting.action(action), alerting.text(note, "note", required=False)
        alert = self._alert(alert_id)
        if alert.status != alerting.OPEN:
            raise AlertStateError(f"alert {alert_id} is already {alert.status}",
                                  field="alert_id")
        self.trigger_event(self.AlertAcknowledged, alert_id=alert_id, action=chosen, note=text,
                           recorded_by=recorded_by)

    def resolve_alert(self, *, alert_id: str, reason: str, recorded_by: str) -> None:
        """Resolve an open or acknowledged alert, giving the ``reason``. Allowed after
        discharge.

        Raises InvalidInputError (empty reason), AlertNotFoundError, AlertStateError (already
        resolved).
        """
        why = alerting.text(reason, "reason", required=True)
        alert = self._alert(alert_id)
        if alert.status == alerting.RESOLVED:
            raise AlertStateError(f"alert {alert_id} is already resolved", field="alert_id")
        self.trigger_event(self.AlertResolved, alert_id=alert_id, reason=why,
                           recorded_by=recorded_by)

    def record_support_review(self, *, alert_id: str | None, clinical_date: date,
                              domains: dict[str, Any], recorded_by: str, now: datetime) -> str:
        """Record a clinical support checklist (see domain.alerts.support_domains) on
        ``clinical_date``, after the alert ``alert_id`` if given. Returns the review id.

        Raises EpisodeClosedError, InvalidInputError (ratings, notes, a date before the
        episode opened), FutureDateError, AlertNotFoundError.
        """
        self._check_open()
        ratings = alerting.support_domains(domains)
        _not_future(clinical_date, now, "administered_on")
        if clinical_date < self.opened_on:
            raise InvalidInputError(
                f"administered_on {clinical_date} is before the episode opened "
                f"({self.opened_on})", field="administered_on")
        if alert_id is not None:
            self._alert(alert_id)
        review_id = str(uuid5(self.id, f"review-{self.version + 1}"))
        self.trigger_event(self.SupportReviewRecorded, review_id=review_id, alert_id=alert_id,
                           clinical_date=clinical_date, domains=ratings,
                           recorded_by=recorded_by)
        return review_id

    def flag_overdue(self, *, today: date, overdue_days: int, recorded_by: str) -> bool:
        """Raise an overdue alert when no valid scorable assessment of the staged instrument
        is dated within N days before ``today`` (counted from the latest one, or from
        ``opened_on``: overdue at exactly N) and no overdue alert is unresolved. N is the
        ``overdue_days`` of the overdue pack SignalsWatched chose (the clinic's, e.g.
        ``overdue|overdue_days=14``), else ``overdue_days`` (the setting
        OUTCOMES_OVERDUE_DAYS, days). Returns whether one was raised (never on a closed
        episode).

        Raises InvalidInputError (``overdue_days`` < 1).
        """
        chosen = self._overdue_pack()
        if chosen is not None:
            alerting.overdue_since(today, today, overdue_days)  # the default is still checked
            overdue_days = int(chosen.params["overdue_days"])
        latest = self._latest_scorable()
        last_on = latest.administered_on if latest else self.opened_on
        days = alerting.overdue_since(last_on, today, overdue_days)
        if days is None or self.is_closed or any(
                a.kind == alerting.OVERDUE and a.unresolved for a in self.alerts.values()):
            return False
        rule = (chosen.ref() if chosen is not None
                else _pack_ref("overdue", overdue_days=overdue_days))
        since = (f"{latest.instrument} {_number(latest.total)} on {last_on}" if latest
                 else f"the episode opened on {last_on}")
        self._raise_alert(
            alerting.OVERDUE, today, latest.assessment_id if latest else None, rule,
            f"No scorable {self.instrument} since {since} ({days} days >= {overdue_days}): an "
            f"assessment is overdue ({rule['id']} v{rule['version']})",
            {"last_assessment_id": latest.assessment_id if latest else None,
             "last_on": last_on.isoformat(), "days": days, "overdue_days": overdue_days},
            f"overdue:{today.isoformat()}", recorded_by)
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

    def unresolved_alerts(self, kind: str) -> list[AlertState]:
        """The alerts of ``kind`` not yet resolved, in the order raised."""
        return [a for a in self.alerts.values() if a.kind == kind and a.unresolved]

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise EpisodeClosedError(f"episode {self.id} was closed on {self.closed_on}")

    def _alert(self, alert_id: str) -> AlertState:
        alert = self.alerts.get(alert_id) if isinstance(alert_id, str) else None
        if alert is None:
            raise AlertNotFoundError(f"no alert {alert_id} in episode {self.id}",
                                     field="alert_id")
        return alert

    def _raise_alert(self, kind: str, clinical_date: date, assessment_id: str | None,
                     rule: dict[str, str], explanation: str, evidence: dict[str, Any],
                     caused_by: str, recorded_by: str) -> None:
        self.trigger_event(
            self.AlertRaised, alert_id=str(uuid5(self.id, f"alert-{self.version + 1}")),
            kind=kind, clinical_date=clinical_date, assessment_id=assessment_id, rule=rule,
            explanation=explanation, evidence=evidence, caused_by=caused_by,
            recorded_by=recorded_by)

    def _stages_signals(self, record: AssessmentState) -> bool:
        """Whether ``record`` is a point of the staged trajectory (its instrument, scorable):
        only then can recording or voiding it change a signal."""
        return record.instrument == self.instrument and record.total is not None

    def _latest_scorable(self) -> AssessmentState | None:
        """The latest valid scorable assessment of the staged instrument (clinical order)."""
        staged = [a for a in self.valid_assessments() if self._stages_signals(a)]
        return max(staged, key=lambda a: (a.administered_on, a.administered_at is not None,
                                          a.administered_at or a.recorded_at, a.recorded_at),
                   default=None)

    def _alert_on_record(self, record: AssessmentState, points: Sequence[Point],
                         caused_by: str, recorded_by: str) -> None:
        """The alerts a new assessment raises or resolves (ADR 0031): a safety alert for a
        PHQ-9 item 9 >= 1 (Kroenke 2001; SPEC §1.1, C4); a scorable assessment of the staged
        instrument resolves the unresolved overdue alerts it is dated after the start of
        (the alert's evidence ``last_on``: a backdated one does not end the wait) and moves the
        signals."""
        safety = self._safety_pack()
        if safety_positive(safety, record.observation()):
            assert record.items is not None
            answer = record.items[int(safety.params["item"]) - 1]
            rule = safety.ref()
            self._raise_alert(
                alerting.SAFETY, record.administered_on, record.assessment_id, rule,
                f"PHQ-9 item 9 (thoughts of death or self-harm) answered {answer} on "
                f"{record.administered_on}: review the patient's safety today "
                f"({rule['id']} v{rule['version']})",
                {"item9": answer, "score": _number(record.total)}, caused_by, recorded_by)
        if not self._stages_signals(record):
            return
        for alert in self.unresolved_alerts(alerting.OVERDUE):
            if record.administered_on <= date.fromisoformat(alert.evidence["last_on"]):
                continue  # backdated: nothing newer than the count's start (ADR 0031)
            self.trigger_event(
                self.AlertResolved, alert_id=alert.alert_id,
                reason=f"assessment {record.assessment_id} recorded on {record.administered_on}",
                recorded_by=recorded_by)
        self._watch_signals(points, caused_by, recorded_by, changed=record.administered_on)

    def _safety_pack(self) -> RulePack:
        """The safety-item pack that watches the episode: the one SignalsWatched chose, else
        phq9-item9 (it always watches)."""
        for d in (self.watching or {}).get("packs", ()):
            if d["kind"] == "safety_item":
                return RulePack.from_description(d)
        return BUILTIN_PACKS["phq9-item9"]

    def _overdue_pack(self) -> RulePack | None:
        """The overdue pack SignalsWatched chose (a variant such as ``overdue|overdue_days=14``),
        or None: then the caller's ``overdue_days`` applies."""
        for d in (self.watching or {}).get("packs", ()):
            if d["kind"] == "overdue":
                return RulePack.from_description(d)
        return None

    def _signal_packs(self) -> tuple[list[RulePack], RecoveryCurve | None]:
        """The cut-point and expected-recovery packs that watch this episode's staged
        instrument, and the clinic's recovery curve (``domain.signals.watch.signal_packs``:
        SignalsWatched's, else the defaults)."""
        return signal_packs(self.watching, self.instrument)

    def _staged_points(self) -> list[Point]:
        """The staged instrument's scorable points of the valid assessments (G2)."""
        return staged_points([a.observation() for a in self.valid_assessments()],
                             self.criteria_set, self.instrument)

    def _watch_signals(self, points: Sequence[Point], caused_by: str, recorded_by: str, *,
                       changed: date | None = None,
                       voided: AssessmentState | None = None) -> None:
        """Re-evaluate each watching pack over ``points``, the staged points after the
        command (``staged_points``; the re-fold's own, so not computed twice): not on track
        after a signal that was not, or at another decision point than the pack's latest
        off-track alert (cut points), or on a later-dated assessment than that alert once it
        is resolved (see ``_newly_off_track``) -> AlertRaised(off_track); on track after a
        not-on-track one -> BackOnTrack naming the pack's unresolved off-track alerts (ADR
        0031, revised after review).
        ``changed``: the date of the one point the command added or voided; a cut-point pack
        is not evaluated for a point outside all its decision windows (``in_decision_window``:
        before day 21, or between windows), which cannot change its signal (expected recovery,
        which reads every point, always is). ``voided``: the
        assessment a void command voided; when it leaves a pack whose last signal was not on
        track with no signal at all, the signal is withdrawn (``_withdraw``)."""
        packs, curve = self._signal_packs()
        day = (changed - self.opened_on).days if changed is not None else None
        for pack in packs:
            if day is not None and not in_decision_window(pack, day):
                continue
            signal = current_signal(pack, points, opened_on=self.opened_on, curve=curve)
            last = self.signals.get(pack.id)
            if signal is None:
                if voided is not None and last == "not_on_track":
                    self._withdraw(pack, voided, caused_by, recorded_by)
                continue
            evidence = {**signal.evidence, "week": signal.week,
                        "decision_point": signal.decision_point}
            if signal.status == "not_on_track" and self._newly_off_track(pack, signal, last):
                self._raise_alert(alerting.OFF_TRACK, signal.clinical_date,
                                  signal.assessment_id, signal.rule, signal.explanation,
                                  evidence, caused_by, recorded_by)
            elif signal.status == "on_track" and last == "not_on_track":
                self.trigger_event(
                    self.BackOnTrack, rule=signal.rule, assessment_id=signal.assessment_id,
                    clinical_date=signal.clinical_date, explanation=signal.explanation,
                    evidence=evidence, alert_ids=[
                        a.alert_id for a in self.unresolved_alerts(alerting.OFF_TRACK)
                        if a.rule["id"] == pack.id],
                    caused_by=caused_by, recorded_by=recorded_by)

    def _withdraw(self, pack: RulePack, voided: AssessmentState, caused_by: str,
                  recorded_by: str) -> None:
        """The not-on-track signal of ``pack`` rested on ``voided``, and no point gives a
        signal now: BackOnTrack with evidence ``{"withdrawn": true}`` (the pack's signal
        becomes "cleared": neither on nor off track), naming its unresolved off-track alerts,
        which stay open for a clinician to resolve (ADR 0031, revised after review)."""
        rule = pack.ref()
        self.trigger_event(
            self.BackOnTrack, rule=rule, assessment_id=voided.assessment_id,
            clinical_date=voided.administered_on,
            explanation=(f"The {rule['id']} signal is withdrawn because assessment "
                         f"{voided.assessment_id}, which it rested on, was voided: no "
                         f"remaining score gives a signal ({rule['id']} v{rule['version']})"),
            evidence={"withdrawn": True}, alert_ids=[
                a.alert_id for a in self.unresolved_alerts(alerting.OFF_TRACK)
                if a.rule["id"] == pack.id],
            caused_by=caused_by, recorded_by=recorded_by)

    def _newly_off_track(self, pack: RulePack, signal: Signal, last: str | None) -> bool:
        """Whether a not-on-track ``signal`` of ``pack`` raises an alert (ADR 0031, revised
        after review): the pack's last signal was not not_on_track; or (cut points) the
        signal's decision point differs from that of the pack's latest off-track alert (week 9
        still not on track after week 4 is a new decision); or that alert is resolved and the
        signal rests on a later-dated assessment than the alert."""
        if last != "not_on_track":
            return True
        latest = next((a for a in reversed(self.alerts.values())
                       if a.kind == alerting.OFF_TRACK and a.rule["id"] == pack.id), None)
        if latest is None:
            return True
        if pack.kind == "cut_points" and (
                latest.evidence.get("decision_point") != signal.decision_point):
            return True
        return not latest.unresolved and signal.clinical_date > latest.clinical_date

    def _fold(self, discharge: date | None = None) -> FoldResult:
        return fold([a.observation() for a in self.valid_assessments()], self.criteria_set,
                    instrument=self.instrument, discharge=discharge)

    def _restage(self, caused_by: str, recorded_by: str) -> tuple[Point, ...]:
        """Append the difference between the asserted decisions and a fresh fold (G1); returns
        the fold's staged points (the trajectory the signals read)."""
        folded = self._fold()
        decisions = {d.key: d for d in folded.events}
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
        return folded.points

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
    cls: frozenset(f.name for f in fields(cls))
    for cls in (AssessmentState, StageState, AlertState)}


def _pack_ref(pack_id: str, **params: Any) -> dict[str, str]:
    """The ref of the built-in rule pack ``pack_id``, or of its variant with ``params`` when
    they differ from the pack's own (``overdue|overdue_days=21``)."""
    pack = get_rule_pack(pack_id)
    changed = {k: v for k, v in params.items() if pack.params.get(k) != v}
    ref: dict[str, str] = (pack.with_params(changed) if changed else pack).ref()
    return ref


def _number(total: str | None) -> int | float | None:
    """A stored total ("9", "9/2") as points (int, or float to 3 decimals)."""
    return None if total is None else points(Fraction(total))


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
