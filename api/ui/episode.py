"""The episode page (issue 14): ``GET /ui/episodes/{episode_id}`` and its forms (acknowledge or
resolve an alert, record an assessment), server-rendered, working without JavaScript.

The page reads what the API's routes read: the assessments and alerts from the event store
(one read of the episode aggregate, in the order ``services.app.assessments`` / ``alerts`` give
them: ``clinical_order``, ``alert_order``), the stage history, the episode summary and, for
auditors, the audit trail from their read models. The forms call the application's commands
with ``recorded_by`` = the caller's ``sub``; a domain error re-renders the page with the error in
place (422 invalid input, 409 a state conflict such as an alert already acknowledged) and
nothing is stored; success answers 303 back to the page (post/redirect/get)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, cast
from urllib.parse import urlencode
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.freshness import fresh_view, runs_inline
from api.identity import Principal
from api.problems import status_of
from api.ui import charts
from api.ui.dates import when
from api.ui.episode_chart import (
    InstrumentChart,
    day_points,
    decision_label,
    decision_of,
    instrument_charts,
)
from api.ui.episode_summary import Score, day, points, summary
from api.ui.guard import page_episode, page_principal, require_role
from api.ui.pages import KIND_LABELS
from api.ui.rendering import PageError, checked_form, render
from application.views import AlertView, AssessmentView, alert_order, clinical_order
from bootstrap import Services, Settings
from domain.alerts import ACTIONS
from domain.errors import DomainError, InvalidInputError, NotFoundError
from domain.instruments import INSTRUMENTS, Instrument, get_instrument
from domain.trajectory import parse_date_or_datetime
from projections.audit import AuditView
from projections.episodes import EpisodesView
from projections.stages import StagesView

router = APIRouter(prefix="/ui", include_in_schema=False)
PagePrincipal = Annotated[Principal, Depends(page_principal)]
AUDIT_PAGE = 50
ACTION_LABELS = {"contacted_patient": "Contacted the patient",
                 "safety_plan_reviewed": "Reviewed the safety plan",
                 "reviewed_in_session": "Reviewed in session",
                 "treatment_changed": "Changed the treatment", "referred": "Referred",
                 "support_review": "Support review", "other": "Other"}
STATUS_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}


@dataclass(frozen=True)
class Options:
    """The page's query: ``axis`` date | session, ``voided`` / ``retracted`` shown, the
    instrument whose item fields the form shows (``record``), the assessment just recorded
    (``recorded``) and the audit page's cursor (``audit_cursor``, an event position)."""

    axis: charts.Axis = "date"
    voided: bool = False
    retracted: bool = False
    record: str | None = None
    recorded: str | None = None
    audit_cursor: int = 0


@dataclass
class FormState:
    """A form sent back with its errors: the fields as typed (never logged), ``errors`` by field
    name (``""``: the form as a whole), the status (422 or 409) and which form (``record``,
    ``acknowledge:<alert_id>`` or ``resolve:<alert_id>``)."""

    which: str
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 422


def flag(value: str | None) -> bool:
    """A checkbox's query value: "1", "on", "true" are set; anything else is not."""
    return (value or "").lower() in ("1", "on", "true")


def options(axis: str | None, voided: str | None, retracted: str | None, record: str | None,
            recorded: str | None, audit_cursor: str | None) -> Options:
    """The page's query as ``Options``. Raises ``PageError`` 422 for an axis other than date or
    session, an unknown instrument or a cursor that is not a whole number >= 0."""
    if axis not in (None, "", "date", "session"):
        raise PageError(422, "axis: not one of date, session")
    if record and record not in INSTRUMENTS:
        raise PageError(422, f"record: not one of {', '.join(INSTRUMENTS)}")
    cursor = (audit_cursor or "0").strip()
    if not cursor.isdigit() or len(cursor) > 12:
        raise PageError(422, "audit_cursor: expected a whole number")
    return Options(cast(charts.Axis, axis or "date"), flag(voided), flag(retracted),
                   record or None, (recorded or "")[:64] or None, int(cursor))


def kept_query(opts: Options) -> str:
    """The view options a form keeps when it is sent back with errors, as the query of its
    ``action`` ("?axis=session&voided=1"; "" for the defaults)."""
    query: dict[str, str] = {"axis": opts.axis} if opts.axis != "date" else {}
    query |= {name: "1" for name in ("voided", "retracted") if getattr(opts, name)}
    return f"?{urlencode(query)}" if query else ""


def posted_options(request: Request) -> Options:
    """The view options a form's ``action`` query carries (``kept_query``); anything else, or
    a malformed value, is the default view."""
    query = request.query_params
    try:
        return options(query.get("axis"), query.get("voided"), query.get("retracted"),
                       None, None, None)
    except PageError:
        return Options()


def view(request: Request, name: str) -> Any:
    """The read model ``name``, caught up as the API's routes get it (``fresh_view``)."""
    return fresh_view(name)(request, None)


def settle(request: Request, position: int | None) -> None:
    """Before a redirect back to the page: wait (up to the settings' ``min_position_timeout``)
    until the read models the page reads have processed the command's ``position``, as the
    API's ``X-Min-Position`` does, so the page shows the decisions the command made. Inline
    mode needs no wait (every read catches up first); a timeout only leaves the page behind."""
    settings: Settings = request.app.state.settings
    if position is None or runs_inline(settings):
        return
    services: Services = request.app.state.services
    for name in ("stages", "episodes"):
        services.read_models.wait(name, position, settings.min_position_timeout)


def item_count(instrument: Instrument) -> int:
    """How many item fields the form shows: the summed items and the extra ones (PHQ-9's
    difficulty question, item 10); 0 for a total-only instrument."""
    return 0 if instrument.total_only else instrument.item_count + instrument.extra_items


def figure(chart: InstrumentChart) -> charts.Figure:
    """The chart's SVG (``charts.trajectory_figure``; its ids ``chart-{slug}-svg-...``)."""
    return charts.trajectory_figure(chart.trajectory, figure_id=f"chart-{chart.slug}-svg",
                                    title=chart.title, description=chart.description)


def page(request: Request, principal: Principal, episode_id: UUID, opts: Options,
         form: FormState | None = None) -> Response:
    """The episode page; with ``form``, a form sent back with its errors (its status)."""
    services: Services = request.app.state.services
    episode = services.app.get_episode(episode_id)  # one read of the aggregate for the page
    assessments: list[AssessmentView] = clinical_order(episode.assessments.values())
    alerts: list[AlertView] = alert_order(episode.alerts.values())
    stages: StagesView = view(request, "stages")
    episodes: EpisodesView = view(request, "episodes")
    history = stages.history(episode_id, include_retracted=opts.retracted)
    asserted = [e for e in history if not e.get("retracted")]
    brief = episodes.get(episode_id) or {}
    staged = episode.instrument
    criteria = episode.criteria_set
    kept = day_points((a.observation() for a in episode.valid_assessments()), criteria)
    scores = [Score(a.administered_on, float(a.total)) for a in assessments
              if a.instrument == staged and a.assessment_id in kept and a.total is not None]
    instrument_charts_ = instrument_charts(
        assessments, history, staged=staged, criteria=criteria, watching=episode.watching,
        opened_on=episode.opened_on, axis=opts.axis, show_voided=opts.voided,
        kept=kept)
    record_code = (form.values.get("instrument") if form and form.which == "record" else None) \
        or opts.record or staged
    instrument = INSTRUMENTS.get(record_code, INSTRUMENTS[staged])
    audit: dict[str, Any] | None = None
    if principal.has("auditor"):
        trail: AuditView = view(request, "audit")
        items, after = trail.trail(episode_id=episode_id, after=opts.audit_cursor,
                                   limit=AUDIT_PAGE)
        following = request.url.include_query_params(audit_cursor=after) if after else None
        audit = {"items": [{**item, "data_json": json.dumps(item["data"], sort_keys=True)}
                           for item in items],
                 "next_url": f"{following.path}?{following.query}" if following else None}
    recorded = next((a for a in assessments if a.assessment_id == opts.recorded), None)
    return render(request, "episode.html", {
        "title": f"Episode of {episode.patient_ref}", "episode_id": str(episode_id),
        "episode": episode, "brief": brief, "criteria": episode.criteria_ref,
        "summary": summary(staged, scores, [decision_of(e) for e in asserted]),
        "opts": opts, "charts": [(c, figure(c)) for c in instrument_charts_],
        "decisions": [{**e, "label": decision_label(e)} for e in history],
        "alerts": alerts, "kinds": KIND_LABELS, "statuses": STATUS_LABELS,
        "actions": [(a, ACTION_LABELS.get(a, a)) for a in ACTIONS],
        "can_write": principal.has("clinician"), "audit": audit,
        "record": {"instrument": instrument, "item_fields": item_count(instrument),
                   "assessment_id": str(uuid4())},
        "instruments": sorted(INSTRUMENTS), "form": form, "recorded": recorded,
        "day": day, "points": points, "when": when, "kept_query": kept_query(opts),
    }, status=form.status if form else 200)


@router.get("/episodes/{episode_id}", response_class=HTMLResponse)
def episode_page(episode_id: str, request: Request, principal: PagePrincipal,
                 axis: str | None = None, voided: str | None = None,
                 retracted: str | None = None, record: str | None = None,
                 recorded: str | None = None, audit_cursor: str | None = None) -> Response:
    """The episode page (clinician or auditor; another clinic's episode 404, as a missing one)."""
    require_role(principal, "clinician", "auditor")
    uuid = page_episode(request, episode_id, principal)
    return page(request, principal, uuid, options(axis, voided, retracted, record, recorded,
                                                  audit_cursor))


def field_of(error: DomainError, *, items: int) -> str:
    """The form field a domain error names: ``items[3]`` -> ``item_4``, ``items`` -> ``item_1``
    (``total`` when the form shows no items), ``item_2`` as it is; ``administered_on`` and
    ``total`` as named (every form shows a total field); ``""`` (the form as a whole) for
    anything the form does not show."""
    name = error.field or ""
    if name.startswith("items[") and name.endswith("]") and name[6:-1].isdigit():
        return f"item_{int(name[6:-1]) + 1}"
    if name == "items":
        return "item_1" if items else "total"
    if name.startswith("item_") and name[5:].isdigit():
        return name
    return name if name in ("administered_on", "total") else ""


def parse_assessment(fields: Mapping[str, str]) -> dict[str, Any]:
    """The record form's fields as ``record_assessment``'s arguments: ``instrument``,
    ``administered`` (a date or aware datetime, ``parse_date_or_datetime`` as the API), ``items``
    (item_1..item_N; an empty field is a missing item, an empty extra item is left off; every
    item empty: None) and ``total`` (points; empty: None), ``assessment_id`` (empty: one is
    made). Which of items and total are needed is the domain's rule, as for the API's JSON
    (``domain.instruments.validate``): this only reads the fields. Raises InvalidInputError
    naming the field (``item_3``, ``total``, ``administered_on``) or the instrument's
    UnknownInstrumentError."""
    instrument = get_instrument(fields.get("instrument", ""))
    administered = parse_date_or_datetime(fields.get("administered_on", "").strip(),
                                          "administered_on")
    items: list[int | None] | None = None
    total = whole(fields.get("total", ""), "total")
    if not instrument.total_only:
        items = [whole(fields.get(f"item_{i}", ""), f"item_{i}")
                 for i in range(1, item_count(instrument) + 1)]
        while len(items) > instrument.item_count and items[-1] is None:
            items.pop()  # the difficulty question left empty: not asked
        if all(value is None for value in items):
            items = None  # no item answered: a total only, or neither (the domain says)
    return {"instrument": instrument.code, "administered": administered, "items": items,
            "total": total, "assessment_id": fields.get("assessment_id", "").strip() or None}


def whole(value: str, name: str) -> int | None:
    """A number field: None when empty, else a whole number >= 0. Raises InvalidInputError
    naming ``name`` (the value is not quoted back: it may be personal data)."""
    text = value.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise InvalidInputError(f"{name.replace('_', ' ')} must be a whole number", field=name)
    return int(text)


@router.post("/episodes/{episode_id}/assessments")
async def record_assessment(episode_id: str, request: Request,
                            principal: PagePrincipal, services: ServicesDep) -> Response:
    """Record an assessment from the form (clinician); 303 to the page with ``recorded=``."""
    require_role(principal, "clinician")
    uuid = await run_in_threadpool(page_episode, request, episode_id, principal)
    fields = await checked_form(request)
    values = {k: v for k, v in fields.items() if k != "csrf"}
    try:
        parsed = parse_assessment(fields)
        result = await run_in_threadpool(lambda: services.app.record_assessment(
            uuid, recorded_by=principal.sub, **parsed))
    except DomainError as error:
        if isinstance(error, NotFoundError):
            raise PageError(404, error.message) from None
        code = values.get("instrument", "")
        shown = item_count(INSTRUMENTS[code]) if code in INSTRUMENTS else 0
        form = FormState("record", values, {field_of(error, items=shown): error.message},
                         status_of(error)[0])
        return await run_in_threadpool(page, request, principal, uuid, posted_options(request),
                                       form)
    assert result.assessment is not None, "record_assessment always returns the assessment"
    await run_in_threadpool(settle, request, result.position)
    return RedirectResponse(f"/ui/episodes/{uuid}?recorded={result.assessment.assessment_id}",
                            status_code=303)


async def alert_command(request: Request, principal: Principal, services: Services,
                        episode_id: str, alert_id: str, verb: str) -> Response:
    """Acknowledge or resolve (``verb``) the alert from its form; 303 back to its article."""
    require_role(principal, "clinician")
    uuid = await run_in_threadpool(page_episode, request, episode_id, principal)
    fields = await checked_form(request)
    values = {k: v for k, v in fields.items() if k != "csrf"}
    try:
        if verb == "acknowledge":
            await run_in_threadpool(lambda: services.app.acknowledge_alert(
                uuid, alert_id, action=fields.get("action", ""), note=fields.get("note", ""),
                recorded_by=principal.sub))
        else:
            await run_in_threadpool(lambda: services.app.resolve_alert(
                uuid, alert_id, reason=fields.get("reason", ""), recorded_by=principal.sub))
    except DomainError as error:
        if isinstance(error, NotFoundError):
            raise PageError(404, error.message) from None
        name = error.field if error.field in ("action", "note", "reason") else None
        form = FormState(f"{verb}:{alert_id}", values, {name or "": error.message},
                         status_of(error)[0])
        return await run_in_threadpool(page, request, principal, uuid, posted_options(request),
                                       form)
    return RedirectResponse(f"/ui/episodes/{uuid}#alert-{alert_id}", status_code=303)


@router.post("/episodes/{episode_id}/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(episode_id: str, alert_id: str, request: Request,
                            principal: PagePrincipal, services: ServicesDep) -> Response:
    """Acknowledge an open alert with a coded action and a note (clinician)."""
    return await alert_command(request, principal, services, episode_id, alert_id, "acknowledge")


@router.post("/episodes/{episode_id}/alerts/{alert_id}/resolve")
async def resolve_alert(episode_id: str, alert_id: str, request: Request,
                        principal: PagePrincipal, services: ServicesDep) -> Response:
    """Resolve an open or acknowledged alert with a reason (clinician)."""
    return await alert_command(request, principal, services, episode_id, alert_id, "resolve")
