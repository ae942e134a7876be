"""What the application hands out: typed, immutable views of assessments, stage decisions,
retractions and course outcomes, built from the episode's state and events (never the events).

Each view has ``as_json()``, its JSON form (ISO dates, points as numbers), which the read models
store and the HTTP API returns unchanged. ``describe_assessment``, ``describe_stage_event`` and
``describe_retraction`` are those JSON forms in one call (their old home was ``domain.episode``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from domain.alerts import KINDS, AlertState
from domain.episode import AssessmentState, Episode
from domain.instruments import points


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class CriteriaRef:
    """The criteria set that made a decision: id, semantic version and content hash (ADR 0003)."""

    id: str
    version: str
    hash: str

    @classmethod
    def of(cls, ref: Mapping[str, str]) -> CriteriaRef:
        return cls(ref["id"], ref["version"], ref["hash"])

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "hash": self.hash}


@dataclass(frozen=True)
class AssessmentView:
    """An assessment as a chart shows it. ``total``: scored total in points (int, or a float to 3
    decimals after proration), None when unscorable; ``total_exact``: the exact rational ("9/2");
    ``administered_at``: the administration time when one was given (timezone-aware)."""

    assessment_id: str
    instrument: str
    administered_on: date
    administered_at: datetime | None
    items: tuple[int | None, ...] | None
    reported_total: int | None
    total: int | float | None
    total_exact: str | None
    severity: str | None
    flags: tuple[str, ...]
    voided: bool
    void_reason: str | None
    recorded_at: datetime
    recorded_by: str

    @classmethod
    def of(cls, a: AssessmentState) -> AssessmentView:
        return cls(
            a.assessment_id, a.instrument, a.administered_on, a.administered_at,
            tuple(a.items) if a.items is not None else None, a.reported_total,
            points(Fraction(a.total)) if a.total is not None else None, a.total,
            a.severity, tuple(a.flags), a.voided, a.void_reason, a.recorded_at, a.recorded_by)

    def as_json(self) -> dict[str, Any]:
        return {
            "assessment_id": self.assessment_id, "instrument": self.instrument,
            "administered_on": self.administered_on.isoformat(),
            "administered_at": self.administered_at.isoformat() if self.administered_at else None,
            "items": list(self.items) if self.items is not None else None,
            "reported_total": self.reported_total, "total": self.total,
            "total_exact": self.total_exact, "severity": self.severity, "flags": list(self.flags),
            "voided": self.voided, "void_reason": self.void_reason,
            "recorded_at": self.recorded_at.isoformat(), "recorded_by": self.recorded_by,
        }


def clinical_order(assessments: Iterable[AssessmentState]) -> list[AssessmentView]:
    """Assessments in clinical order: by date, then administration time (a timed record after the
    untimed ones of its day), then recorded time (SPEC G1-G2: clinical time first)."""
    def key(a: AssessmentState) -> tuple[date, bool, datetime, datetime]:
        timed = a.administered_at is not None
        return (a.administered_on, timed, a.administered_at or a.recorded_at, a.recorded_at)
    return [AssessmentView.of(a) for a in sorted(assessments, key=key)]


@dataclass(frozen=True)
class StageDecisionView:
    """A recorded stage decision (SPEC §2.8 vocabulary): ``type`` is the event name
    (``ResponseReached`` ...), dated at its confirming assessment, with the criteria that made it,
    the rule, an explanation, the evidence and what caused it (``assessment:<id>``, ...)."""

    stage_id: str
    type: str
    date: dt.date
    degree: str | None
    onset: dt.date | None
    due_date: dt.date | None
    assessment_id: str
    criteria: CriteriaRef
    rule: str
    explanation: str
    evidence: Mapping[str, Any]
    caused_by: str
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, event: Episode.StageEvent) -> StageDecisionView:
        return cls(
            event.stage_id, type(event).__name__, event.clinical_date, event.degree, event.onset,
            event.due_date, event.assessment_id, CriteriaRef.of(event.criteria), event.rule,
            event.explanation, event.evidence, event.caused_by, event.recorded_by,
            event.timestamp)

    def as_json(self) -> dict[str, Any]:
        return {
            "stage_id": self.stage_id, "type": self.type, "date": self.date.isoformat(),
            "degree": self.degree, "onset": _iso(self.onset), "due_date": _iso(self.due_date),
            "assessment_id": self.assessment_id, "criteria": self.criteria.as_json(),
            "rule": self.rule, "explanation": self.explanation, "evidence": dict(self.evidence),
            "caused_by": self.caused_by, "recorded_by": self.recorded_by,
            "recorded_at": self.recorded_at.isoformat(),
        }


@dataclass(frozen=True)
class Retraction:
    """The withdrawal of an earlier decision that no longer holds (it stays in the record)."""

    stage_id: str
    retracted_type: str
    date: date
    reason: str
    criteria: CriteriaRef
    caused_by: str
    recorded_by: str
    recorded_at: datetime
    type: str = "StageRetracted"

    @classmethod
    def of(cls, event: Episode.StageRetracted) -> Retraction:
        return cls(event.stage_id, event.retracted_type, event.clinical_date, event.reason,
                   CriteriaRef.of(event.criteria), event.caused_by, event.recorded_by,
                   event.timestamp)

    def as_json(self) -> dict[str, Any]:
        return {
            "stage_id": self.stage_id, "type": self.type, "retracted_type": self.retracted_type,
            "date": self.date.isoformat(), "reason": self.reason,
            "criteria": self.criteria.as_json(), "caused_by": self.caused_by,
            "recorded_by": self.recorded_by, "recorded_at": self.recorded_at.isoformat(),
        }


@dataclass(frozen=True)
class MeasureChange:
    """One measure's first and last scorable administrations of a course and the change
    (last minus first, points). ``first``/``last``: assessment_id, date, instrument, score."""

    first: Mapping[str, Any]
    last: Mapping[str, Any]
    change: int | float


@dataclass(frozen=True)
class TalkingTherapiesOutcome:
    """NHS Talking Therapies course outcome at discharge (SPEC §2.4, C8). The measures are None
    where the measure's denominator excludes the course; ``reason`` says why it is ineligible."""

    eligible: bool
    case_at_start: bool | None
    recovery: bool | None
    reliable_improvement: bool | None
    reliable_deterioration: bool | None
    reliable_recovery: bool | None
    no_reliable_change: bool | None
    discharge: date | None
    appointments: int
    measures: Mapping[str, MeasureChange]
    tags: tuple[str, ...]
    reason: str | None = None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> TalkingTherapiesOutcome:
        return cls(
            d["eligible"], d["case_at_start"], d["recovery"], d["reliable_improvement"],
            d["reliable_deterioration"], d["reliable_recovery"], d["no_reliable_change"],
            date.fromisoformat(d["discharge"]) if d["discharge"] else None, d["appointments"],
            {code: MeasureChange(m["first"], m["last"], m["change"])
             for code, m in d["measures"].items()}, tuple(d["tags"]), d.get("reason"))

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "eligible": self.eligible, "case_at_start": self.case_at_start,
            "recovery": self.recovery, "reliable_improvement": self.reliable_improvement,
            "reliable_deterioration": self.reliable_deterioration,
            "reliable_recovery": self.reliable_recovery,
            "no_reliable_change": self.no_reliable_change, "discharge": _iso(self.discharge),
            "appointments": self.appointments,
            "measures": {code: {"first": dict(m.first), "last": dict(m.last), "change": m.change}
                         for code, m in self.measures.items()},
            "tags": list(self.tags)}
        return data if self.reason is None else {**data, "reason": self.reason}


@dataclass(frozen=True)
class Cms159Outcome:
    """CMS159 Depression Remission at Twelve Months (SPEC §2.5, C9): ``met``, whether the course
    is in the denominator, the index PHQ-9, the window (``start``/``end`` ISO dates) and the
    assessment that decided; ``reason`` when there is no index."""

    met: bool
    in_denominator: bool
    index: Mapping[str, Any] | None
    window: Mapping[str, str] | None
    measure_assessment: Mapping[str, Any] | None
    reason: str | None = None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Cms159Outcome:
        return cls(d["met"], d["in_denominator"], d["index"], d["window"],
                   d["measure_assessment"], d.get("reason"))

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "met": self.met, "in_denominator": self.in_denominator,
            "index": dict(self.index) if self.index is not None else None,
            "window": dict(self.window) if self.window is not None else None,
            "measure_assessment": (dict(self.measure_assessment)
                                   if self.measure_assessment is not None else None)}
        return data if self.reason is None else {**data, "reason": self.reason}


CourseOutcome = TalkingTherapiesOutcome | Cms159Outcome


def course_outcome(recorded: Mapping[str, Any] | None) -> CourseOutcome | None:
    """The typed form of the outcome a ``Closed`` event recorded (None for longitudinal sets)."""
    if recorded is None:
        return None
    return Cms159Outcome.of(recorded) if "met" in recorded else TalkingTherapiesOutcome.of(recorded)


@dataclass(frozen=True)
class AlertView:
    """An alert of an episode (ADR 0031): ``kind`` safety | off_track | overdue, ``status``
    open | acknowledged | resolved, ``raised_on`` (clinical date), the ``rule`` (pack ref
    ``{"id", "version", "hash"}``), the ``explanation`` and ``evidence``; who acknowledged it,
    when, with which coded ``action`` and ``note``; who resolved it, when, and the
    ``resolution`` (reason). ``assessment_id``: the assessment it rests on (None for an
    overdue alert of an episode without assessments); ``raised_at`` / ``raised_by``: when the
    alert was recorded and by whom; ``raised_seq``: its place in the order the episode raised
    its alerts (1 = the first; 0 when the view was made without its list), part of the list's
    sort key (``alert_key``), not of the JSON."""

    alert_id: str
    kind: str
    status: str
    raised_on: date
    rule: CriteriaRef
    explanation: str
    evidence: Mapping[str, Any]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    action: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    assessment_id: str | None = None
    raised_at: datetime | None = None
    raised_by: str | None = None
    raised_seq: int = 0

    @classmethod
    def of(cls, a: AlertState, raised_seq: int = 0) -> AlertView:
        return cls(a.alert_id, a.kind, a.status, a.clinical_date, CriteriaRef.of(a.rule),
                   a.explanation, a.evidence, a.acknowledged_by, a.acknowledged_at, a.action,
                   a.note, a.resolved_by, a.resolved_at, a.resolution, a.assessment_id,
                   a.raised_at, a.raised_by, raised_seq)

    def as_json(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return value.isoformat() if value else None
        return {
            "alert_id": self.alert_id, "kind": self.kind, "status": self.status,
            "raised_on": self.raised_on.isoformat(), "rule": self.rule.as_json(),
            "explanation": self.explanation, "evidence": dict(self.evidence),
            "assessment_id": self.assessment_id, "raised_at": stamp(self.raised_at),
            "raised_by": self.raised_by, "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": stamp(self.acknowledged_at), "action": self.action,
            "note": self.note, "resolved_by": self.resolved_by,
            "resolved_at": stamp(self.resolved_at), "resolution": self.resolution}


AlertKey = tuple[int, int, int]


def alert_key(view: AlertView) -> AlertKey:
    """The list's sort key of an alert, ascending: its kind's rank (safety 0, off_track 1,
    overdue 2), then newest first: minus the ordinal of ``raised_on``, minus ``raised_seq``.
    Neither part changes once raised, so a page can start after a key (a keyset cursor)."""
    return (KINDS.index(view.kind), -view.raised_on.toordinal(), -view.raised_seq)


def alert_order(alerts: Iterable[AlertState]) -> list[AlertView]:
    """Alerts as a clinician reads them: safety first, then off_track, then overdue; newest
    first within a kind (raised_on, then the order raised). ``alerts`` in the order raised
    (the episode's insertion-ordered alerts, which events only ever add to)."""
    views = [AlertView.of(a, seq) for seq, a in enumerate(alerts, start=1)]
    return sorted(views, key=alert_key)


def describe_assessment(a: AssessmentState) -> dict[str, Any]:
    """JSON form of an assessment (see AssessmentView)."""
    return AssessmentView.of(a).as_json()


def describe_stage_event(event: Episode.StageEvent) -> dict[str, Any]:
    """JSON form of a stage event: type, date, degree, onset, due_date, evidence, explanation,
    rule, criteria, stage_id, caused_by, recorded_by, recorded_at."""
    return StageDecisionView.of(event).as_json()


def describe_retraction(event: Episode.StageRetracted) -> dict[str, Any]:
    """JSON form of a retraction: which stage, of what type and date, why, caused by what."""
    return Retraction.of(event).as_json()
