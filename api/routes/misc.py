"""Audit across episodes, clinic outcomes, criteria sets and health."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from api.deps import AuditDep, CohortDep, PrincipalDep, ServicesDep, in_clinics, require
from api.openapi import problems
from api.pages import Cursor, Limit, next_url
from api.responses import AuditPage, ClinicOutcomes, Health
from api.schemas import IsoDateTime
from bootstrap import Services, Settings
from domain.errors import NotFoundError
from projections.errors import ViewUnavailable

router = APIRouter()  # behind authentication (api.create_app)
public = APIRouter()  # GET /health only: what a load balancer probes, no clinical data


@router.get("/audit", response_model=AuditPage, tags=["audit"],
            responses=problems(401, 403, 422), dependencies=[Depends(require("auditor"))])
def audit(view: AuditDep, request: Request, principal: PrincipalDep, limit: Limit = 50,
          cursor: Cursor = 0, clinic_id: str | None = None,
          since: IsoDateTime | None = None, until: IsoDateTime | None = None,
          recorded_by: str | None = None) -> AuditPage:
    """Stored events of the caller's clinics' episodes in position order, filtered by clinic,
    recorded time (``since``/``until``, inclusive, timezone-aware) and user."""
    if clinic_id is not None:
        in_clinics(request, clinic_id, principal)
    items, after = view.trail(
        clinic_id=clinic_id, since=since, until=until, recorded_by=recorded_by,
        clinics=principal.clinics, after=cursor, limit=limit)
    return AuditPage.model_validate({"items": items, "next": next_url(request, after)})


@router.get("/clinics/{clinic_id}/outcomes", tags=["clinics"], response_model=ClinicOutcomes,
            responses=problems(401, 403, 404), dependencies=[Depends(require("researcher"))])
def clinic_outcomes(clinic_id: str, view: CohortDep, request: Request,
                    principal: PrincipalDep) -> ClinicOutcomes:
    """Cohort figures: episodes, evaluable, counts and rates (percent of evaluable) of response,
    remission, recovery, relapse, recurrence; median days from baseline to response and to
    full remission. Another clinic than the caller's answers 404 like a clinic without
    episodes."""
    if not in_clinics(request, clinic_id, principal):
        raise NotFoundError(f"no episodes at clinic {clinic_id}", field="clinic_id")
    figures = view.outcomes(clinic_id)
    if figures.episodes == 0:
        raise NotFoundError(f"no episodes at clinic {clinic_id}", field="clinic_id")
    return ClinicOutcomes.model_validate({"clinic_id": clinic_id, **asdict(figures)})


@public.get("/health", tags=["health"], response_model=Health)
def health(services: ServicesDep, request: Request) -> Health:
    """The event store in use (``store``: its recorder's kind, sqlite, postgres or memory;
    ``path``: the SQLite file, else null), its last position, and each read model's position,
    lag and state. ``status`` is ``degraded`` (still 200: writes and the other reads go on) while
    a read model is refused; the database unreachable is 503 with Retry-After.
    ``safety_overdue``: safety alerts unacknowledged for ``OUTCOMES_SAFETY_ACK_HOURS`` or
    longer, as of the caseload read model's position (null while it is refused)."""
    store = services.store
    projections: dict[str, dict[str, Any]] = dict(services.read_models.status())
    refused = any(p.get("state") == "refused" for p in projections.values())
    return Health.model_validate(
        {"status": "degraded" if refused else "ok", "store": store.kind, "path": store.path,
         "position": services.app.recorder.max_notification_id() or 0,
         "projections": projections, "safety_overdue": _safety_overdue(services, request)})


def _safety_overdue(services: Services, request: Request) -> int | None:
    settings: Settings = request.app.state.settings
    try:
        view = services.read_models.caseload
    except (ViewUnavailable, KeyError):  # refused, or not among this process's read models
        return None
    return view.safety_overdue(now=services.app.clock(),
                               safety_ack_hours=settings.safety_ack_hours)
