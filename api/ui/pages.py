"""The pages: a clinic's caseload (the caseload read model's rows, as the API's route reads them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import CaseloadDep, ServicesDep
from api.identity import Principal
from api.routes.caseload import decode_cursor, encode_cursor
from api.ui.guard import page_principal, require_clinic, require_role
from api.ui.rendering import PageError, render
from bootstrap import Settings
from domain.errors import InvalidInputError
from domain.stages import STAGES
from projections.caseload import KINDS, ON_TRACK

router = APIRouter(prefix="/ui", include_in_schema=False)
PagePrincipal = Annotated[Principal, Depends(page_principal)]
PAGE_SIZE = 50
KIND_LABELS = {"safety": "Safety alert", "off_track": "Off track", "overdue": "Overdue"}
ON_TRACK_LABELS = {"on_track": "On track", "not_on_track": "Not on track",
                   "insufficient": "Insufficient data", "not_yet": "Not yet known"}


def choice(name: str, value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    """A filter's value: None when empty; raises ``PageError`` 422 for one not ``allowed``."""
    if not value:
        return None
    if value not in allowed:
        raise PageError(422, f"{name}: not one of {', '.join(allowed)}")
    return value


@router.get("/", response_class=HTMLResponse)
def home(request: Request, principal: PagePrincipal) -> Response:
    return render(request, "home.html", {"title": "Outcome Ledger",
                                         "clinics": sorted(principal.clinics)})


@router.get("/clinics/{clinic_id}/caseload", response_class=HTMLResponse)
def caseload(clinic_id: str, request: Request, principal: PagePrincipal, view: CaseloadDep,
             services: ServicesDep, kind: str | None = None, on_track: str | None = None,
             instrument: str | None = None, stage: str | None = None,
             cursor: str | None = None) -> Response:
    """The clinic's open episodes in caseload order (safety, off track, overdue, the rest)."""
    require_role(principal, "clinician", "auditor")
    require_clinic(request, clinic_id, principal)
    filters = {"kind": choice("kind", kind, KINDS),
               "on_track": choice("on_track", on_track, ON_TRACK),
               "instrument": (instrument or "").strip()[:64] or None,
               "stage": choice("stage", stage, list(STAGES))}
    try:
        after = decode_cursor(cursor or None)
    except InvalidInputError as exc:
        raise PageError(422, str(exc)) from None
    settings: Settings = request.app.state.settings
    items, last = view.find(clinic_id, now=services.app.clock(),
                            safety_ack_hours=settings.safety_ack_hours, after=after,
                            limit=PAGE_SIZE, **filters)
    following = encode_cursor(last)
    url = request.url.include_query_params(cursor=following) if following else None
    next_url = f"{url.path}?{url.query}" if url else None
    return render(request, "caseload.html", {
        "title": f"Caseload of {clinic_id}", "clinic_id": clinic_id, "items": items,
        "filters": filters, "kinds": KIND_LABELS, "on_track_labels": ON_TRACK_LABELS,
        "stages": STAGES, "next_url": next_url})
