"""Re-scoring under other criteria: shadow runs, adoption, custom criteria sets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api.deps import (
    EpisodeId,
    Forbidden,
    IfMatchDep,
    PrincipalDep,
    ServicesDep,
    UserDep,
    in_clinics,
    require,
)
from api.freshness import ledger_position
from api.openapi import ETAG, LOCATION, POSITION, headers, problems
from api.pages import Limit, next_url
from api.responses import (
    ChangeResult,
    ClinicAdoption,
    CriteriaPage,
    CriteriaRegistered,
    CriteriaVersions,
    RescoringChangePage,
    RescoringEpisode,
    RescoringRun,
    RescoringStarted,
)
from api.routes.episodes import change_result
from api.schemas import AdoptCriteria, RegisterCriteria, RequestRescoring
from domain.criteria.builtin import BUILTIN
from domain.errors import InvalidInputError, NotFoundError, UnknownCriteriaError

router = APIRouter(tags=["re-scoring"])
# Researchers run shadow re-scorings of their clinics; admins register criteria sets and adopt
# them (for one episode or a clinic). Anyone authenticated reads the criteria sets: definitions,
# no clinical data, and every role needs them to read a stage or a run.
RESEARCHER = [Depends(require("researcher"))]
ADMIN = [Depends(require("admin"))]


class RunNotFoundError(NotFoundError):
    code = "rescoring-not-found"


class CriteriaNotFoundError(NotFoundError):
    """GET of a criteria set that does not exist: the resource is missing (404); naming an
    unknown set in a command stays a 422 (UnknownCriteriaError)."""

    code = "criteria-not-found"


def _run_id(run_id: str, request: Request, services: ServicesDep,
            principal: PrincipalDep) -> UUID:
    """The run id from the path, when that run covers one of the caller's clinics; anything else
    (not a UUID, no such run, another clinic's run, a run over every clinic started from the
    CLI) answers the same 404."""
    try:
        uuid = UUID(run_id)
    except ValueError:
        raise RunNotFoundError(f"no re-scoring run {run_id[:64]!r}") from None
    run = services.rescorings.run(uuid)
    if not in_clinics(request, run["clinic_id"] if run else None, principal):
        raise RunNotFoundError(f"no re-scoring run {uuid}")
    return uuid


RunId = Annotated[UUID, Depends(_run_id)]


@router.post("/rescorings", status_code=202, response_model=RescoringStarted,
             responses={**problems(401, 403, 422), **headers(202, LOCATION)},
             dependencies=RESEARCHER)
def start_rescoring(body: RequestRescoring, services: ServicesDep, user: UserDep,
                    principal: PrincipalDep, request: Request,
                    response: Response) -> RescoringStarted:
    """Start a shadow run: replay the valid assessments of every episode of ``clinic_id`` (one
    of the caller's clinics, required over the API: 422 without, 403 for another clinic; as
    known at ``as_of``) under the named criteria. Changes no episode; the run is recorded."""
    if body.clinic_id is None:
        raise InvalidInputError("clinic_id is required: a run covers one of your clinics",
                                field="clinic_id")
    if not in_clinics(request, body.clinic_id, principal):
        raise Forbidden(f"the token does not carry clinic {body.clinic_id!r}", field="clinic_id")
    run = services.shadow_runs.request(criteria=body.criteria, params=body.params,
                                       clinic_id=body.clinic_id, as_of=body.as_of,
                                       recorded_by=user)
    services.shadow_runs.start(run.run_id)
    response.headers["Location"] = str(request.url_for("get_rescoring", run_id=run.run_id))
    return RescoringStarted.model_validate(
        {"run_id": str(run.run_id), "status": run.status, "criteria": run.criteria,
         "clinic_id": run.clinic_id, "as_of": run.as_of.isoformat()})


@router.get("/rescorings/{run_id}", response_model=RescoringRun,
            responses=problems(401, 403, 404), dependencies=RESEARCHER)
def get_rescoring(run_id: RunId, services: ServicesDep) -> RescoringRun:
    """Status, progress, criteria (id, version, hash), counts and the cohort figures under the
    episodes' current criteria and under the new ones, side by side."""
    run = services.rescorings.run(run_id)
    if run is None:
        raise RunNotFoundError(f"no re-scoring run {run_id}")
    total = run["total"]
    return RescoringRun.model_validate(
        {**run, "progress": round(100 * run["processed"] / total, 1) if total else None})


@router.get("/rescorings/{run_id}/changes", response_model=RescoringChangePage,
            responses=problems(401, 403, 404, 422), response_model_exclude_unset=True,
            dependencies=RESEARCHER)
def rescoring_changes(run_id: RunId, services: ServicesDep, request: Request,
                      limit: Limit = 50,
                      cursor: Annotated[str, Query(max_length=64)] = "") -> RescoringChangePage:
    """Episodes whose stage history would differ: events added, removed or moved, and the stage
    now vs under the new criteria."""
    if services.rescorings.run(run_id) is None:
        raise RunNotFoundError(f"no re-scoring run {run_id}")
    items, after = services.rescorings.changes(run_id, cursor, limit)
    return RescoringChangePage.model_validate({"items": items, "next": next_url(request, after)})


@router.get("/rescorings/{run_id}/episodes/{episode_id}", response_model=RescoringEpisode,
            responses=problems(401, 403, 404), response_model_exclude_unset=True,
            dependencies=RESEARCHER)
def rescoring_episode(run_id: RunId, episode_id: EpisodeId,
                      services: ServicesDep) -> RescoringEpisode:
    """One episode's full would-be history under the run's criteria, next to the current one."""
    result = services.rescorings.episode(run_id, episode_id)
    if result is None:
        raise RunNotFoundError(f"episode {episode_id} is not in re-scoring run {run_id}")
    return RescoringEpisode.model_validate(result)


@router.post("/episodes/{episode_id}/criteria", response_model=ChangeResult, dependencies=ADMIN,
             responses={**problems(401, 403, 404, 409, 422), **headers(200, ETAG, POSITION)})
def adopt_for_episode(episode_id: EpisodeId, body: AdoptCriteria, services: ServicesDep,
                      user: UserDep, expected_version: IfMatchDep,
                      response: Response) -> ChangeResult:
    """Adopt another criteria set for one episode: CriteriaAdopted, then the retractions and new
    decisions it implies, each citing the adoption. History is never rewritten."""
    result = services.app.adopt_criteria(episode_id, criteria=body.criteria, params=body.params,
                                         reason=body.reason, recorded_by=user,
                                         expected_version=expected_version)
    return change_result(result, response, services)


@router.post("/clinics/{clinic_id}/criteria", response_model=ClinicAdoption,
             responses={**problems(401, 403, 422), **headers(200, POSITION)}, dependencies=ADMIN)
def adopt_for_clinic(clinic_id: str, body: AdoptCriteria, services: ServicesDep,
                     user: UserDep, principal: PrincipalDep,
                     request: Request, response: Response) -> ClinicAdoption:
    """Adopt another criteria set for every open episode of a clinic (one of the caller's: 403
    for another)."""
    if not in_clinics(request, clinic_id, principal):
        raise Forbidden(f"the token does not carry clinic {clinic_id!r}", field="clinic_id")
    adoption = services.adoptions.adopt(clinic_id, criteria=body.criteria, params=body.params,
                                        reason=body.reason, recorded_by=user)
    return ClinicAdoption.model_validate(
        {**asdict(adoption), "position": ledger_position(response, services, None)})


@router.post("/criteria", status_code=201, response_model=CriteriaRegistered,
             dependencies=ADMIN,
             responses={**problems(401, 403, 422),
                        **headers(201, LOCATION, POSITION, description="Registered."),
                        **headers(200, LOCATION, POSITION, model=CriteriaRegistered, description=(
                            "The same definition was registered before: nothing changed."))})
def register_criteria(body: RegisterCriteria, services: ServicesDep, user: UserDep,
                      principal: PrincipalDep, request: Request,
                      response: Response) -> CriteriaRegistered:
    """Register a custom set derived from a built-in one (201), or a new version of it when the
    definition changed (201); the same definition again changes nothing (200). A custom set's id
    begins with the id of one of the admin's clinics and ``-`` or ``.`` (``clinic-north-26w``):
    an admin registers and revises only their clinics' sets (403 otherwise)."""
    owner = next((c for c in sorted(principal.clinics, key=len, reverse=True)
                  if body.id.startswith((f"{c}-", f"{c}."))), None)
    if owner is None and body.id not in BUILTIN:  # a built-in id is refused below (422)
        raise Forbidden(f"a custom set's id begins with one of your clinics' ids and '-' "
                        f"(e.g. {next(iter(sorted(principal.clinics)), 'clinic-north')}-26w)",
                        field="id")
    request.state.clinic_id = owner
    criteria, created = services.app.register_criteria(
        criteria_id=body.id, base=body.base, params=body.params, source=body.source,
        recorded_by=user)
    response.status_code = 201 if created else 200
    response.headers["Location"] = str(request.url_for("get_criteria", criteria_id=criteria.id))
    return CriteriaRegistered.model_validate(
        {**criteria.describe(), "position": ledger_position(response, services, None)})


@router.get("/criteria", response_model=CriteriaPage, responses=problems(401))
def list_criteria(services: ServicesDep) -> CriteriaPage:
    """The built-in criteria sets and the latest version of every custom one."""
    sets = [*BUILTIN.values(), *services.app.custom_criteria()]
    return CriteriaPage.model_validate({"items": [s.describe() for s in sets], "next": None})


@router.get("/criteria/{criteria_id}", response_model=CriteriaVersions,
            responses=problems(401, 404))
def get_criteria(criteria_id: str, services: ServicesDep) -> CriteriaVersions:
    """Every version of a criteria set: definition (id, version, hash, parameters), base,
    overridden parameters, who registered it and when."""
    try:
        versions = services.app.criteria_versions(criteria_id)
    except UnknownCriteriaError as exc:
        raise CriteriaNotFoundError(exc.message, field=exc.field) from None
    return CriteriaVersions.model_validate({"id": criteria_id, "versions": versions})
