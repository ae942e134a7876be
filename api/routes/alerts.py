"""Alerts of an episode (ADR 0031): list, acknowledge, resolve; support reviews."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import EpisodeId, IfMatchDep, ServicesDep, UserDep
from api.freshness import ledger_position
from api.openapi import ETAG, POSITION, headers, problems
from api.pages import Limit, next_url
from api.responses import AlertChange, AlertPage, SupportReviewRecorded
from api.routes.episodes import READER, WRITER
from api.schemas import AcknowledgeAlert, RecordSupportReview, ResolveAlert
from application.outcomes import CommandResult
from application.views import AlertKey, AlertView, alert_key
from bootstrap import Services
from domain.alerts import SUPPORT_DOMAINS

router = APIRouter(prefix="/episodes", tags=["alerts"])
CHANGED = {**problems(401, 403, 404, 409, 422), **headers(200, ETAG, POSITION)}
# The sort key of a page's last alert (``application.views.alert_key``): kind rank, raised_on's
# ordinal, order raised. Opaque to clients; anything else is a 422 problem.
ALERT_CURSOR = r"^[0-2]\.[0-9]{1,7}\.[0-9]{1,9}$"
AlertCursor = Annotated[str | None, Query(
    pattern=ALERT_CURSOR, max_length=20, description="From the previous page's next.")]


def _cursor_of(view: AlertView) -> str:
    rank, minus_ordinal, minus_seq = alert_key(view)
    return f"{rank}.{-minus_ordinal}.{-minus_seq}"


def _key_of(cursor: str) -> AlertKey:
    rank, ordinal, seq = (int(part) for part in cursor.split("."))
    return (rank, -ordinal, -seq)


def _alert_change(result: CommandResult, response: Response,
                  services: Services) -> AlertChange:
    response.headers["ETag"] = f'"{result.version}"'
    return AlertChange.model_validate(
        {"episode_id": str(result.episode_id), "version": result.version, "stage": result.stage,
         "alert": result.alerts[-1],
         "position": ledger_position(response, services, result.position)})


@router.get("/{episode_id}/alerts", response_model=AlertPage, dependencies=READER,
            responses=problems(401, 403, 404, 422))
def list_alerts(episode_id: EpisodeId, services: ServicesDep, request: Request,
                limit: Limit = 50, cursor: AlertCursor = None) -> AlertPage:
    """The episode's alerts: safety first, then off_track, then overdue, newest first within a
    kind, each with its rule (id, version, hash), explanation, evidence and lifecycle. Read
    from the event store, so never behind a write. ``cursor`` is the sort key of the previous
    page's last alert (a keyset): an alert raised between two pages neither repeats an alert
    on the next page nor hides one that was listed after the cursor."""
    alerts = services.app.alerts(episode_id)
    if cursor is not None:
        after_key = _key_of(cursor)
        alerts = [a for a in alerts if alert_key(a) > after_key]
    page = alerts[:limit]
    after = _cursor_of(page[-1]) if len(alerts) > limit else None
    return AlertPage.model_validate({"items": page, "next": next_url(request, after)})


@router.post("/{episode_id}/alerts/{alert_id}/acknowledge", response_model=AlertChange,
             responses=CHANGED, dependencies=WRITER)
def acknowledge_alert(episode_id: EpisodeId, alert_id: str, body: AcknowledgeAlert,
                      services: ServicesDep, user: UserDep, expected_version: IfMatchDep,
                      response: Response) -> AlertChange:
    """Acknowledge an open alert: the coded ``action`` taken and a ``note``; who and when are
    the caller and now. 409 when the alert is already acknowledged or resolved."""
    result = services.app.acknowledge_alert(
        episode_id, alert_id, action=body.action, note=body.note, recorded_by=user,
        expected_version=expected_version)
    return _alert_change(result, response, services)


@router.post("/{episode_id}/alerts/{alert_id}/resolve", response_model=AlertChange,
             responses=CHANGED, dependencies=WRITER)
def resolve_alert(episode_id: EpisodeId, alert_id: str, body: ResolveAlert,
                  services: ServicesDep, user: UserDep, expected_version: IfMatchDep,
                  response: Response) -> AlertChange:
    """Resolve an open or acknowledged alert, giving the ``reason``. 409 when it is already
    resolved."""
    result = services.app.resolve_alert(episode_id, alert_id, reason=body.reason,
                                        recorded_by=user, expected_version=expected_version)
    return _alert_change(result, response, services)


@router.post("/{episode_id}/support-reviews", status_code=201,
             response_model=SupportReviewRecorded, dependencies=WRITER,
             responses={**problems(401, 403, 404, 409, 422),
                        **headers(201, ETAG, POSITION, description="Recorded.")})
def record_support_review(episode_id: EpisodeId, body: RecordSupportReview,
                          services: ServicesDep, user: UserDep, expected_version: IfMatchDep,
                          response: Response) -> SupportReviewRecorded:
    """Record a clinical support checklist (therapeutic alliance, motivation, social support,
    life events: each rated 1 = a serious problem .. 5 = no concern, with a note), after the
    alert ``alert_id`` if given. 409 for a closed episode, 404 for an unknown alert."""
    result = services.app.record_support_review(
        episode_id, alert_id=body.alert_id, clinical_date=body.administered_on,
        domains={name: getattr(body, name).model_dump() for name in SUPPORT_DOMAINS},
        recorded_by=user, expected_version=expected_version)
    response.headers["ETag"] = f'"{result.version}"'
    return SupportReviewRecorded.model_validate(
        {"episode_id": str(result.episode_id), "review_id": result.review_id,
         "version": result.version, "stage": result.stage,
         "position": ledger_position(response, services, result.position)})
