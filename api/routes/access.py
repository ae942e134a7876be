"""The access log: every request's record, for the auditors of the clinics it concerns."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from api import problems as problem_responses
from api.deps import PrincipalDep, ServicesDep
from api.openapi import problems
from api.pages import Cursor, Limit, next_url
from api.responses import AccessLogPage
from api.schemas import IsoDateTime
from projections.access_log import AccessLogView

router = APIRouter(tags=["access log"])
# api.openapi has no 403 description until api.auth's branch adds one; the Problem schema is its.
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {
    **problems(422)[422], "description": "Forbidden: the caller lacks the auditor role."}}


@router.get("/access-log", response_model=AccessLogPage, responses={**problems(422), **FORBIDDEN})
def access_log(principal: PrincipalDep, services: ServicesDep, request: Request,
               limit: Limit = 50, cursor: Cursor = 0, clinic_id: str | None = None,
               sub: str | None = None,
               since: Annotated[IsoDateTime | None, Query(description="Arrival, inclusive.")] = None,
               until: Annotated[IsoDateTime | None, Query(description="Arrival, inclusive.")] = None,
               episode_id: UUID | None = None) -> AccessLogPage | Response:
    """Access records in order, filtered by clinic, subject, arrival time and episode; only
    those of the caller's clinics (records of failed authentications, which have no clinic,
    to every auditor). Auditor role."""
    # Until api.auth's require("auditor") dependency merges: swap this check for it.
    if not principal.has("auditor"):
        return problem_responses.problem(403, "Forbidden", "this route needs the auditor role",
                                         "forbidden", field="auditor")
    services.access_views.catch_up()
    view = services.access_views.views[AccessLogView.name]
    assert isinstance(view, AccessLogView)
    items, after = view.records(
        visible_to=principal.clinics, clinic_id=clinic_id, sub=sub, since=since, until=until,
        episode_id=str(episode_id) if episode_id else None, after=cursor, limit=limit)
    return AccessLogPage.model_validate({"items": items, "next": next_url(request, after)})
