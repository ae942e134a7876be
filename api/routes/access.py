"""The access log: every request's record, for the auditors of the clinics it concerns."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api.deps import ServicesDep, require
from api.identity import Principal
from api.openapi import problems
from api.pages import Cursor, Limit, next_url
from api.responses import AccessLogPage
from api.schemas import IsoDateTime
from projections.access_log import AccessLogView

router = APIRouter(tags=["access log"])


@router.get("/access-log", response_model=AccessLogPage, responses=problems(401, 403, 422))
def access_log(principal: Annotated[Principal, Depends(require("auditor"))],
               services: ServicesDep, request: Request,
               limit: Limit = 50, cursor: Cursor = 0, clinic_id: str | None = None,
               sub: str | None = None,
               since: Annotated[IsoDateTime | None, Query(description="Arrival, inclusive.")] = None,
               until: Annotated[IsoDateTime | None, Query(description="Arrival, inclusive.")] = None,
               episode_id: UUID | None = None) -> AccessLogPage:
    """Access records in order, filtered by clinic, subject, arrival time and episode; only
    those of the caller's clinics (records of failed authentications, which have no clinic,
    to every auditor). Auditor role."""
    services.access_views.catch_up()
    view = services.access_views.views[AccessLogView.name]
    assert isinstance(view, AccessLogView)
    items, after = view.records(
        visible_to=principal.clinics, clinic_id=clinic_id, sub=sub, since=since, until=until,
        episode_id=str(episode_id) if episode_id else None, after=cursor, limit=limit)
    return AccessLogPage.model_validate({"items": items, "next": next_url(request, after)})
