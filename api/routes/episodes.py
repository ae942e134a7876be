"""Episodes: open, record, void, close; summary, list, assessments, stage history, audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import (
    AuditDep,
    EpisodeId,
    EpisodesDep,
    Forbidden,
    IfMatchDep,
    PrincipalDep,
    ServicesDep,
    StagesDep,
    UserDep,
    in_clinics,
    require,
)
from api.freshness import ledger_position
from api.openapi import ETAG, LOCATION, POSITION, headers, problems
from api.pages import Cursor, Limit, next_url
from api.responses import (
    AssessmentList,
    AssessmentResult,
    AuditPage,
    ChangeResult,
    EpisodeCreated,
    EpisodePage,
    EpisodeSummary,
    Stage,
    StageHistory,
)
from api.schemas import (
    CloseEpisode,
    IsoDateTime,
    OpenEpisode,
    RecordAssessment,
    VoidAssessment,
)
from application.outcomes import CommandResult
from bootstrap import Services
from domain.errors import EpisodeNotFoundError
from domain.trajectory import parse_date_or_datetime

router = APIRouter(prefix="/episodes", tags=["episodes"])
# Who may do what (api.identity): clinicians read and write their clinics' episodes, auditors
# read them and their audit trails. Each route's role is checked before its episode's clinic, so
# a caller without the role learns nothing about which episodes exist (403 either way).
WRITER = [Depends(require("clinician"))]
READER = [Depends(require("clinician", "auditor"))]
AUDITOR = [Depends(require("auditor"))]


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def change_result(result: CommandResult, response: Response, services: Services) -> ChangeResult:
    """The answer of a change to an episode: ETag, X-Ledger-Position and the body."""
    _etag(response, result.version)
    return ChangeResult.model_validate(
        {"episode_id": str(result.episode_id), "version": result.version, "stage": result.stage,
         "stage_events": result.stage_events, "retracted": result.retracted,
         "outcome": result.outcome,
         "position": ledger_position(response, services, result.position)})


WRITE = problems(401, 403, 404, 409, 422)
CHANGED = {**WRITE, **headers(200, ETAG, POSITION)}


@router.post("", status_code=201, response_model=EpisodeCreated, dependencies=WRITER,
             responses={**problems(401, 403, 422), **headers(201, ETAG, LOCATION, POSITION)})
def open_episode(body: OpenEpisode, services: ServicesDep, user: UserDep, request: Request,
                 principal: PrincipalDep, response: Response) -> EpisodeCreated:
    """Open a treatment episode under a criteria set (default ``acnp2006``), in one of the
    caller's clinics (403 for a clinic the token does not carry)."""
    if not in_clinics(request, body.clinic_id, principal):
        raise Forbidden(f"the token does not carry clinic {body.clinic_id!r}", field="clinic_id")
    result = services.app.open_episode(
        patient_ref=body.patient_ref, clinic_id=body.clinic_id, recorded_by=user,
        criteria=body.criteria, params=body.params, instrument=body.instrument,
        opened_on=body.opened_on)
    _etag(response, result.version)
    response.headers["Location"] = str(request.url_for("get_episode",
                                                       episode_id=result.episode_id))
    return EpisodeCreated.model_validate(
        {"episode_id": str(result.episode_id), "version": result.version,
         "stage": result.stage, "criteria": result.criteria,
         "position": ledger_position(response, services, result.position)})


@router.get("", response_model=EpisodePage, responses=problems(401, 403, 422),
            dependencies=READER)
def list_episodes(view: EpisodesDep, request: Request, principal: PrincipalDep,
                  limit: Limit = 50, cursor: Cursor = 0, clinic_id: str | None = None,
                  stage: Annotated[Stage | None, Query(description="Current stage.")] = None,
                  patient_ref: str | None = None) -> EpisodePage:
    """Episode summaries of the caller's clinics, filtered by clinic, current stage or patient
    reference (another clinic's id finds nothing)."""
    if clinic_id is not None:
        in_clinics(request, clinic_id, principal)
    items, after = view.find(
        clinic_id=clinic_id, stage=stage, patient_ref=patient_ref, clinics=principal.clinics,
        after=cursor, limit=limit)
    return EpisodePage.model_validate({"items": items, "next": next_url(request, after)})


@router.get("/{episode_id}", response_model=EpisodeSummary, dependencies=READER,
            responses={**problems(401, 403, 404), **headers(200, ETAG)})
def get_episode(episode_id: EpisodeId, view: EpisodesDep,
                response: Response) -> EpisodeSummary:
    """The episode summary: clinic, patient_ref, criteria, stage, baseline, latest score,
    flags, counts, version (also the ``ETag``)."""
    summary = view.get(episode_id)
    if summary is None:
        raise EpisodeNotFoundError(f"no episode {episode_id}")
    _etag(response, summary["version"])
    return EpisodeSummary.model_validate(summary)


@router.get("/{episode_id}/assessments", response_model=AssessmentList, dependencies=READER,
            responses=problems(401, 403, 404))
def list_assessments(episode_id: EpisodeId, services: ServicesDep) -> AssessmentList:
    """Every assessment of the episode, voided ones marked with the reason, in clinical order
    (date, then administration time, then recorded time): what a chart of the episode needs.
    Read from the event store, so it is never behind a write."""
    return AssessmentList.model_validate(
        {"episode_id": str(episode_id), "items": services.app.assessments(episode_id)})


@router.post("/{episode_id}/assessments", status_code=201, response_model=AssessmentResult,
             dependencies=WRITER,
             responses={**WRITE, **headers(201, ETAG, POSITION, description="Recorded."),
                        **headers(200, ETAG, POSITION, model=AssessmentResult, description=(
                            "The same assessment_id and content were recorded before: the "
                            "first result, nothing stored (replayed: true)."))})
async def record_assessment(episode_id: EpisodeId, body: RecordAssessment,
                            services: ServicesDep, user: UserDep, expected_version: IfMatchDep,
                            request: Request, response: Response) -> AssessmentResult:
    """Record an assessment; 201 with the stage events it caused, or 200 with the first result
    when the same ``assessment_id`` and content were recorded before."""
    # ``async`` with the store's work in one worker thread: a plain ``def`` route would hand
    # off twice, for the call and again for FastAPI's check of the returned model (ADR 0029).
    def record() -> AssessmentResult:
        result = services.app.record_assessment(
            episode_id, instrument=body.instrument,
            administered=parse_date_or_datetime(body.administered_on, "administered_on"),
            items=body.items, total=body.total, assessment_id=body.assessment_id,
            recorded_by=user, expected_version=expected_version)
        _etag(response, result.version)
        if result.replayed:
            response.status_code = 200
        assessment = result.assessment
        assert assessment is not None, "record_assessment always returns the assessment"
        request.state.assessment_id = assessment.assessment_id  # for the access log
        return AssessmentResult.model_validate(
            {"episode_id": str(episode_id), "assessment_id": assessment.assessment_id,
             "version": result.version, "stage": result.stage, "total": assessment.total,
             "severity": assessment.severity, "flags": assessment.flags,
             "assessment": assessment, "stage_events": result.stage_events,
             "retracted": result.retracted, "replayed": result.replayed,
             "position": ledger_position(response, services, result.position)})
    return await run_in_threadpool(record)


@router.post("/{episode_id}/assessments/{assessment_id}/void", response_model=ChangeResult,
             responses=CHANGED, dependencies=WRITER)
def void_assessment(episode_id: EpisodeId, assessment_id: str, body: VoidAssessment,
                    services: ServicesDep, user: UserDep, expected_version: IfMatchDep,
                    response: Response) -> ChangeResult:
    """Mark an assessment entered in error; returns the stage events retracted and asserted."""
    result = services.app.void_assessment(episode_id, assessment_id, reason=body.reason,
                                          recorded_by=user, expected_version=expected_version)
    return change_result(result, response, services)


@router.post("/{episode_id}/close", response_model=ChangeResult, responses=CHANGED,
             dependencies=WRITER)
def close_episode(episode_id: EpisodeId, body: CloseEpisode, services: ServicesDep, user: UserDep,
                  expected_version: IfMatchDep, response: Response) -> ChangeResult:
    """Discharge; ``outcome`` is the course outcome (NHS Talking Therapies object, CMS159)."""
    result = services.app.close_episode(episode_id, discharged_on=body.discharged_on,
                                        recorded_by=user, expected_version=expected_version)
    return change_result(result, response, services)


@router.get("/{episode_id}/stages", response_model=StageHistory, dependencies=READER,
            responses=problems(401, 403, 404, 422), response_model_exclude_unset=True)
def stage_history(episode_id: EpisodeId, view: StagesDep,
                  as_of: Annotated[IsoDateTime | None, Query(
                      description="Transaction time, ISO 8601 with offset.")] = None,
                  include_retracted: bool = False) -> StageHistory:
    """The stage history under the criteria in force; ``as_of`` shows what the record showed
    at that moment (transaction time); retracted decisions only with ``include_retracted``."""
    criteria = view.criteria(episode_id, as_of)
    if criteria is None:
        if view.criteria(episode_id) is None:
            raise EpisodeNotFoundError(f"no episode {episode_id}")
        criteria = {}  # as_of before the episode was opened: nothing was recorded yet
    events = view.history(episode_id, as_of=as_of, include_retracted=include_retracted)
    return StageHistory.model_validate(
        {"episode_id": str(episode_id), "criteria": criteria,
         "as_of": as_of.isoformat() if as_of else None, "events": events})


@router.get("/{episode_id}/audit", response_model=AuditPage, dependencies=AUDITOR,
            responses=problems(401, 403, 404, 422))
def episode_audit(episode_id: EpisodeId, view: AuditDep, request: Request,
                  limit: Limit = 50, cursor: Cursor = 0) -> AuditPage:
    """Every stored event of the episode in order: position, type, recorded time, clinical
    date, recorded_by and data."""
    items, after = view.trail(episode_id=episode_id, after=cursor, limit=limit)
    # Every episode's trail starts with its Opened event (a cursor past the end is still a 404
    # for an episode that does not exist).
    if not items and (cursor == 0 or not view.trail(episode_id=episode_id, limit=1)[0]):
        raise EpisodeNotFoundError(f"no episode {episode_id}")
    return AuditPage.model_validate({"items": items, "next": next_url(request, after)})
