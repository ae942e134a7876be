"""A clinic's caseload: its open episodes, the ones needing action first (ADR 0032)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.deps import CaseloadDep, PrincipalDep, ServicesDep, in_clinics, require
from api.openapi import problems
from api.pages import Limit, next_url
from api.responses import CaseloadPage, Stage
from bootstrap import Settings
from domain.errors import InvalidInputError, NotFoundError

router = APIRouter(tags=["clinics"])
# The key of the last row of a page (``projections.caseload.rank_of``): group, the oldest
# unresolved alert's raise time, the waiting date and the opening position; handed out opaque
# (base64url): clients follow next as given, and no date reads in plain text in a URL or an
# access log. An encoding, not a secret: it holds no identifier, score or clinic.
RANK = re.compile(r"^[0-3]\|[0-9T:.+-]{0,40}\|[0-9]{4}-[0-9]{2}-[0-9]{2}\|[0-9]{20}$")
CaseloadCursor = Annotated[str | None, Query(
    pattern=r"^[A-Za-z0-9_-]{1,120}$", description="From the previous page's next (opaque).")]


def encode_cursor(rank: str | None) -> str | None:
    """The opaque cursor of a page's last row ``rank`` (None: the last page)."""
    return None if rank is None else base64.urlsafe_b64encode(rank.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The rank an ``encode_cursor`` cursor names. Raises InvalidInputError (422) for one that
    does not decode to a sort key of this list."""
    if cursor is None:
        return None
    try:
        rank = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        rank = ""
    if not RANK.match(rank):
        raise InvalidInputError("cursor: not a cursor of this list (use the next link as given)",
                                field="cursor")
    return rank


@router.get("/clinics/{clinic_id}/caseload", response_model=CaseloadPage,
            responses=problems(401, 403, 404, 422),
            dependencies=[Depends(require("clinician", "auditor"))])
def caseload(clinic_id: str, view: CaseloadDep, services: ServicesDep, request: Request,
             principal: PrincipalDep, limit: Limit = 50, cursor: CaseloadCursor = None,
             kind: Annotated[Literal["safety", "off_track", "overdue"] | None, Query(
                 description="Only episodes with an unresolved alert of this kind.")] = None,
             on_track: Literal["on_track", "not_on_track", "insufficient", "not_yet"]
             | None = None,
             instrument: str | None = None,
             stage: Annotated[Stage | None, Query(description="Current stage.")] = None,
             ) -> CaseloadPage:
    """The clinic's open episodes with their stage, latest score and date, unresolved alerts
    by kind, on-track status and days since the last assessment: an unresolved safety alert
    first, then off-track, then overdue, then the rest; within a group the oldest unresolved
    alert of its kind first, then the most days since the last assessment. Another clinic than
    the caller's answers 404."""
    if not in_clinics(request, clinic_id, principal):
        raise NotFoundError(f"no clinic {clinic_id[:64]!r}", field="clinic_id")
    settings: Settings = request.app.state.settings
    items, after = view.find(
        clinic_id, now=services.app.clock(), safety_ack_hours=settings.safety_ack_hours,
        kind=kind, on_track=on_track, instrument=instrument, stage=stage,
        after=decode_cursor(cursor), limit=limit)
    return CaseloadPage.model_validate(
        {"items": items, "next": next_url(request, encode_cursor(after))})
