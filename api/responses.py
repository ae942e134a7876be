"""Response bodies of the HTTP API (pydantic v2): what each route returns, so the OpenAPI document
states it. Built from the application's views (``from_attributes``) or from read-model rows.

Datetimes keep the offset form the service has always written (``+00:00``, not ``Z``); free-form
parts (a decision's ``evidence``, a stored event's ``data``, a set's ``params``) are objects whose
shape depends on the rule, event or kind named next to them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from domain.episode import STAGE_EVENT_TYPES
from domain.stages import STAGES

# A moment as ISO 8601 with its offset, written by ``datetime.isoformat`` (what the read models
# store and the service has always returned).
Moment = Annotated[dt.datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str),
                   WithJsonSchema({"type": "string", "format": "date-time"})]
# A moment as a read model stored it (ISO 8601 text with offset), returned as stored.
MomentText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
DateText = Annotated[str, Field(json_schema_extra={"format": "date"})]

def known_stage(value: str) -> str:
    """``value`` if it is a stage (``domain.stages.STAGES``); the error names the valid ones."""
    if value not in STAGES:
        raise ValueError(f"unknown stage; expected one of {', '.join(STAGES)}")
    return value


Stage = Annotated[str, AfterValidator(known_stage), Field(json_schema_extra={"enum": list(STAGES)})]
StageEventType = Annotated[str, Field(json_schema_extra={"enum": sorted(STAGE_EVENT_TYPES)})]
Degree = Literal["partial", "full"]
HASH = ("SHA-256 of the canonical JSON of the set's kind and parameters: it identifies the rules, "
        "not the set (the id names it); sets with equal rules share it (ADR 0003).")
Score = int | float


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CriteriaRef(Response):
    """The criteria set in force or behind a decision: the id names the set, the version its
    revision, the hash its rules (SHA-256 of kind and parameters, ADR 0003)."""

    id: str
    version: str
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description=HASH)


class NoCriteria(Response):
    """``{}``: nothing was recorded yet at the moment asked for."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class StageEvent(Response):
    """A recorded stage decision (SPEC §2.8), dated at its confirming assessment."""

    stage_id: str
    type: StageEventType
    date: dt.date
    degree: Degree | None = Field(description="Remission only: partial or full.")
    onset: dt.date | None = Field(description="Start of the qualifying run (remission).")
    due_date: dt.date | None = Field(description="When recovery became possible (ACNP).")
    assessment_id: str
    criteria: CriteriaRef
    rule: str = Field(description="The rule code that decided (SPEC section).")
    explanation: str
    evidence: dict[str, Any] = Field(description="The scores the rule used; shape by rule.")
    caused_by: str = Field(examples=["assessment:a-1", "void:a-1", "adoption:..."])
    recorded_by: str
    recorded_at: Moment


class Retraction(Response):
    """The withdrawal of an earlier decision that no longer holds (both stay in the record)."""

    stage_id: str
    type: Literal["StageRetracted"]
    retracted_type: StageEventType
    date: dt.date
    reason: str
    criteria: CriteriaRef
    caused_by: str
    recorded_by: str
    recorded_at: Moment


class HistoryEvent(StageEvent):
    retracted: Retraction | None = Field(
        None, description="Present with include_retracted: the retraction, or null.")


class Assessment(Response):
    """An assessment as a chart shows it; voided ones stay, marked, with the reason."""

    assessment_id: str
    instrument: str
    administered_on: dt.date
    administered_at: Moment | None = Field(description="The administration time, if given.")
    items: list[int | None] | None
    reported_total: int | None
    total: Score | None = Field(description="Scored total (points), null if unscorable.")
    total_exact: str | None = Field(pattern=r"^\d+(/\d+)?$", examples=["9/2"])
    severity: str | None
    flags: list[str]
    voided: bool
    void_reason: str | None
    recorded_at: Moment
    recorded_by: str


class MeasureChange(Response):
    first: dict[str, Any] = Field(description="assessment_id, date, instrument, score")
    last: dict[str, Any] = Field(description="assessment_id, date, instrument, score")
    change: Score = Field(description="last minus first, points")


class TalkingTherapiesOutcome(Response):
    """NHS Talking Therapies course outcome at discharge (SPEC §2.4); a measure is null where
    its denominator excludes the course. As the Closed event recorded it: an outcome recorded by
    a later version may carry further figures."""

    model_config = ConfigDict(extra="allow", from_attributes=True)

    eligible: bool
    case_at_start: bool | None
    recovery: bool | None
    reliable_improvement: bool | None
    reliable_deterioration: bool | None
    reliable_recovery: bool | None
    no_reliable_change: bool | None
    discharge: dt.date | None
    appointments: int = Field(ge=0)
    measures: dict[str, MeasureChange]
    tags: list[str]
    reason: str | None = Field(None, exclude_if=lambda v: v is None,
                               description="Why the course is not eligible.")


class Cms159Outcome(Response):
    """CMS159 Depression Remission at Twelve Months (SPEC §2.5), as the Closed event recorded it."""

    model_config = ConfigDict(extra="allow", from_attributes=True)

    met: bool
    in_denominator: bool
    index: dict[str, Any] | None
    window: dict[str, str] | None = Field(description="start and end (ISO dates)")
    measure_assessment: dict[str, Any] | None
    reason: str | None = Field(None, exclude_if=lambda v: v is None)


CourseOutcome = TalkingTherapiesOutcome | Cms159Outcome


class EpisodeCreated(Response):
    episode_id: str
    version: int = Field(ge=1)
    stage: Stage
    criteria: CriteriaRef
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class AssessmentResult(Response):
    episode_id: str
    assessment_id: str
    version: int = Field(ge=1)
    stage: Stage
    total: Score | None = Field(description="Scored total (points), null if unscorable.")
    severity: str | None
    flags: list[str]
    assessment: Assessment
    stage_events: list[StageEvent] = Field(description="Stage decisions this record asserted.")
    retracted: list[Retraction] = Field(description="Earlier decisions this record withdrew.")
    replayed: bool = Field(description="True (status 200): the same record was sent before.")
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class ChangeResult(Response):
    episode_id: str
    version: int = Field(ge=1)
    stage: Stage
    stage_events: list[StageEvent]
    retracted: list[Retraction]
    outcome: CourseOutcome | None = None
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class RuleRef(Response):
    """The rule pack behind a signal or an alert: the id names the pack (or its variant,
    ``overdue|overdue_days=21``), the version its revision, the hash its rules."""

    id: str
    version: str
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description=(
        "SHA-256 of the canonical JSON of the pack's kind and parameters."))


AlertKind = Literal["safety", "off_track", "overdue"]
AlertStatus = Literal["open", "acknowledged", "resolved"]
AlertAction = Literal["contacted_patient", "safety_plan_reviewed", "reviewed_in_session",
                      "treatment_changed", "referred", "support_review", "other"]


class Alert(Response):
    """An alert of an episode and where it is in its lifecycle (open -> acknowledged ->
    resolved, or open -> resolved; ADR 0031)."""

    alert_id: str
    kind: AlertKind = Field(description="safety (PHQ-9 item 9), off_track (a watching rule "
                                        "pack's signal) or overdue (no scorable assessment).")
    status: AlertStatus
    raised_on: dt.date = Field(description="The clinical date: the assessment's, or the sweep's.")
    rule: RuleRef
    explanation: str
    evidence: dict[str, Any] = Field(description="What the rule read; shape by kind and pack.")
    assessment_id: str | None = Field(None, description="The assessment the alert rests on.")
    raised_at: Moment | None = None
    raised_by: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: Moment | None = None
    action: AlertAction | None = None
    note: str | None = None
    resolved_by: str | None = None
    resolved_at: Moment | None = None
    resolution: str | None = Field(None, description="Why it was resolved.")


class AlertChange(Response):
    """The answer of an acknowledgement or a resolution: the alert as it now stands."""

    episode_id: str
    version: int = Field(ge=1)
    stage: Stage
    alert: Alert
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class SupportReviewRecorded(Response):
    episode_id: str
    review_id: str
    version: int = Field(ge=1)
    stage: Stage
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class ScorePoint(Response):
    assessment_id: str
    date: dt.date
    total: Score
    severity: str | None


class EpisodeFlags(Response):
    safety: list[str]
    data_quality: list[str]


class EpisodeCounts(Response):
    assessments: int = Field(ge=0)
    voided: int = Field(ge=0)
    stage_events: int = Field(ge=0)
    retracted: int = Field(ge=0)


class EpisodeSummary(Response):
    episode_id: str
    clinic_id: str
    patient_ref: str
    criteria: CriteriaRef
    instrument: str
    opened_on: dt.date
    closed_on: dt.date | None
    stage: Stage
    baseline: ScorePoint | None
    latest: ScorePoint | None
    flags: EpisodeFlags
    counts: EpisodeCounts
    outcome: CourseOutcome | None
    version: int = Field(ge=1, description="Also the ETag.")
    opened_at: MomentText
    updated_at: MomentText


class Page(Response):
    next: str | None = Field(description="URL of the next page, null on the last.")


class AlertPage(Page):
    items: list[Alert] = Field(description=(
        "Safety first, then off_track, then overdue; newest first within a kind."))


class EpisodePage(Page):
    items: list[EpisodeSummary]


class AssessmentList(Response):
    episode_id: str
    items: list[Assessment] = Field(description="In clinical order: date, time, recorded.")


class StageHistory(Response):
    episode_id: str
    criteria: CriteriaRef | NoCriteria
    as_of: MomentText | None
    events: list[HistoryEvent]


class AuditEntry(Response):
    position: int = Field(ge=1)
    episode_id: str
    clinic_id: str
    version: int = Field(ge=1)
    type: str = Field(description="The event's name: Opened, AssessmentRecorded, ...")
    recorded_at: MomentText
    clinical_date: DateText | None
    recorded_by: str | None
    data: dict[str, Any] = Field(description="The event's data as stored; shape by type.")


class AuditPage(Page):
    items: list[AuditEntry]


HEX32 = r"^[0-9a-f]{64}$"


class AuditProof(Response):
    """An event's RFC 6962 inclusion proof against the latest signed checkpoint (ADR 0022)."""

    store: str = Field(description="The event store: outcomes, rescoring-runs or access-log.")
    position: int = Field(ge=1, description="The event's position (notification id).")
    leaf_index: int = Field(ge=0, description="Its 0-based leaf index in the Merkle tree.")
    event_hash: str = Field(pattern=HEX32, description="The chain hash of the event.")
    leaf_hash: str = Field(pattern=HEX32, description=(
        "RFC 6962 leaf hash: SHA-256(0x00 || position as 8 bytes big-endian || event_hash)."))
    tree_size: int = Field(ge=1, description="The checkpoint's tree size for this store.")
    root: str = Field(pattern=HEX32, description="The checkpoint's root for this store.")
    proof: list[str] = Field(description="The audit path, nearest sibling first (hex).")
    checkpoint: str = Field(description="The signed checkpoint (C2SP signed note text).")


class RateFigure(Response):
    count: int = Field(ge=0)
    denominator: int = Field(ge=0)
    percent: float | None = Field(description="count / denominator, percent (0.1); null when "
                                              "the denominator is 0.")


class TalkingTherapiesFigures(Response):
    """NHS Talking Therapies figures over finished courses (SPEC §2.4; docs/clinical-rules.md)."""

    finished_courses: int = Field(ge=0, description="Discharged after >= 2 treatment appointments.")
    case_at_start: int = Field(ge=0)
    not_case_at_start: int = Field(ge=0)
    recovery: RateFigure = Field(description="Over finished courses at caseness.")
    reliable_recovery: RateFigure = Field(description="Over finished courses at caseness.")
    reliable_improvement: RateFigure = Field(description="Over finished courses.")
    reliable_deterioration: RateFigure = Field(description="Over finished courses.")
    no_reliable_change: RateFigure = Field(description="Over finished courses.")


class CohortFigures(Response):
    """Counts and rates (percent of evaluable episodes) of each milestone; the NHS Talking
    Therapies figures when any episode is under such a set."""

    model_config = ConfigDict(from_attributes=True)

    episodes: int = Field(ge=0)
    closed: int = Field(ge=0)
    below_threshold: int = Field(ge=0)
    evaluable: int = Field(ge=0)
    counts: dict[str, int]
    rates: dict[str, float | None]
    median_days_to_response: Score | None = Field(description="Days, baseline to response.")
    median_days_to_remission: Score | None = Field(description="Days, baseline to full remission.")
    talking_therapies: TalkingTherapiesFigures | None


class ClinicOutcomes(CohortFigures):
    clinic_id: str


class CriteriaDefinition(Response):
    id: str
    version: str
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description=HASH)
    kind: Literal["frank", "acnp", "nhstt", "cms159"]
    title: str
    source: str
    params: dict[str, Any] = Field(description="The parameters (see the kind's table).")


class CriteriaRegistered(CriteriaDefinition):
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class CriteriaPage(Page):
    items: list[CriteriaDefinition]


class CriteriaVersion(Response):
    definition: CriteriaDefinition
    base: str | None = Field(description="The built-in set a custom one derives from.")
    params: dict[str, Any] = Field(description="The parameters it overrides.")
    recorded_by: str | None
    recorded_at: MomentText | None


class CriteriaVersions(Response):
    id: str
    versions: list[CriteriaVersion]


class RescoringStarted(Response):
    run_id: str
    status: Literal["requested"]
    criteria: CriteriaRef
    clinic_id: str | None
    as_of: MomentText


class RescoringFigures(Response):
    now: CohortFigures
    new: CohortFigures


class RescoringRun(Response):
    model_config = ConfigDict(extra="allow", from_attributes=True)

    run_id: str
    criteria: CriteriaRef
    clinic_id: str | None
    as_of: MomentText
    requested_by: str
    requested_at: MomentText
    status: Literal["requested", "running", "completed", "interrupted", "failed"]
    processed: int = Field(ge=0)
    total: int | None
    episodes: int = Field(ge=0)
    changed: int = Field(ge=0)
    last_episode_id: str | None
    finished_at: MomentText | None
    figures: RescoringFigures | None
    progress: float | None = Field(description="Percent of the store's episodes processed.")


class WouldBeDecision(Response):
    """A decision as recorded (``now``) or as the run's criteria would decide (``new``)."""

    type: StageEventType
    date: DateText
    degree: Degree | None
    onset: DateText | None
    assessment_id: str
    explanation: str
    due_date: DateText | None = None
    rule: str | None = None
    evidence: dict[str, Any] | None = None


class MovedDecision(Response):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)

    type: StageEventType
    degree: Degree | None
    from_: DateText = Field(alias="from")
    to: DateText
    onset_from: DateText | None
    onset_to: DateText | None


class Diff(Response):
    added: list[WouldBeDecision]
    removed: list[WouldBeDecision]
    moved: list[MovedDecision]


class RescoringChange(Diff):
    episode_id: str
    clinic_id: str
    stage_now: Stage
    stage_new: Stage
    criteria_now: CriteriaRef
    error: str | None = Field(description="Problem code when the set cannot stage the episode.")


class RescoringChangePage(Page):
    items: list[RescoringChange]


class EpisodeMilestones(Response):
    """Which stages an episode's history reached, as the cohort figures count it."""

    response: bool
    partial_remission: bool
    remission: bool = Field(description="Full remission.")
    recovery: bool
    relapse: bool
    recurrence: bool
    days_to_response: int | None
    days_to_remission: int | None
    closed: bool
    below_threshold: bool
    evaluable: bool
    talking_therapies: bool
    course: dict[str, Any] | None


class RescoringEpisode(Response):
    run_id: str
    episode_id: str
    criteria_hash: str
    clinic_id: str
    changed: bool
    stage_now: Stage
    stage_new: Stage
    criteria_now: CriteriaRef
    milestones_now: EpisodeMilestones
    milestones_new: EpisodeMilestones
    diff: Diff
    now: list[WouldBeDecision]
    new: list[WouldBeDecision]
    outcome_new: CourseOutcome | None
    error: str | None


class SkippedEpisode(Response):
    episode_id: UUID
    code: str


class ClinicAdoption(Response):
    clinic_id: str
    adopted: list[UUID] = Field(description="Episodes now under the set.")
    unchanged: list[UUID] = Field(description="Episodes already under it.")
    skipped: list[SkippedEpisode] = Field(description="Episodes the set cannot apply to.")
    position: int = Field(ge=0, description=(
        "The event store position of the write (also X-Ledger-Position): send it as "
        "X-Min-Position to read the write from any worker."))


class ValidationIssue(Response):
    loc: list[str] = Field(description="Where: body, query, path or header, then the field.")
    msg: str


class Problem(Response):
    """An error as ``application/problem+json`` (RFC 9457)."""

    type: str = Field(examples=["/problems/episode-not-found"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(pattern=r"^[a-z0-9-]+$", description="Stable machine-readable name.")
    field: str | None = Field(None, description="The offending input, where known.")
    errors: list[ValidationIssue] | None = Field(
        None, description="Validation problems: each location and message (values never echoed).")


class ProjectionStatus(Response):
    position: int = Field(ge=0, description="The last event position the read model processed.")
    state: Literal["ok", "refused"] = Field("ok", description=(
        "refused: the read model is ahead of its store or built from another one; its reads "
        "answer 503 until it is rebuilt (outcomes projections rebuild)."))
    reason: str | None = Field(None, description="Why the read model is refused.")
    lag: int = Field(description="Events stored but not yet processed (negative: the read model "
                                 "is ahead of the store, e.g. after restoring an older store).")


class Health(Response):
    """The event store actually in use, read from its recorder (never echoed from a setting)."""

    status: Literal["ok", "degraded"] = Field(description=(
        "degraded: a read model is refused (its state and reason below); writes and the other "
        "reads go on, so the answer stays 200."))
    store: str = Field(description="sqlite (a file), memory (lost at exit) or the recorder's kind.")
    path: str | None = Field(description="The SQLite file's absolute path; null otherwise.")
    position: int = Field(ge=0, description="The store's last event position.")
    projections: dict[str, ProjectionStatus]


class AccessRecordEntry(Response):
    """One access-log record (docs/access-log.md maps each field to a FHIR AuditEvent)."""

    position: int = Field(ge=1, description="Position in the access log: the page cursor.")
    record_id: str
    at: MomentText = Field(description="When the request arrived (UTC).")
    recorded_at: MomentText = Field(description="When the record was stored (UTC).")
    sub: str = Field(description="The token's subject; anonymous when authentication failed.")
    authenticated: bool
    roles: list[str]
    clinics: list[str] = Field(description="The clinics the caller's token carried.")
    clinic_id: str | None = Field(description="The clinic the request concerned, where known.")
    method: str
    route: str = Field(description="The route template, e.g. /episodes/{episode_id}; "
                                   "unmatched when no route matched.")
    episode_id: str | None
    run_id: str | None
    assessment_id: str | None
    status: int = Field(description="The HTTP status answered.")
    request_id: str = Field(description="The X-Request-ID of the answer.")
    client: str | None = Field(description="The client's network address.")


class AccessLogPage(Page):
    items: list[AccessRecordEntry]
