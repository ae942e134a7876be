"""The pages: a clinic's caseload (the caseload read model's rows, as the API's route reads them),
its cohort outcomes (the cohort read model, as ``GET /clinics/{id}/outcomes``), a shadow
re-scoring run and one episode's histories before and after it (the results store, as
``GET /rescorings/...``), and the criteria sets (as ``GET /criteria`` and ``/criteria/{id}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import CaseloadDep, CohortDep, ServicesDep
from api.identity import Principal
from api.routes.caseload import decode_cursor, encode_cursor
from api.ui import charts
from api.ui.dates import when
from api.ui.episode_chart import decision_label
from api.ui.guard import page_episode, page_principal, page_run, require_clinic, require_role
from api.ui.rendering import PageError, render
from bootstrap import Settings
from domain.criteria.builtin import BUILTIN
from domain.errors import InvalidInputError
from domain.rules import MILESTONES, CohortFigures
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


# -- clinic outcomes ------------------------------------------------------------------------

MILESTONE_LABELS = {"response": "Response", "partial_remission": "Partial remission",
                    "remission": "Full remission", "recovery": "Recovery",
                    "relapse": "Relapse", "recurrence": "Recurrence"}
CHARTED = ("response", "remission", "recovery", "relapse", "recurrence")
TT_LABELS = {"recovery": "Recovery", "reliable_improvement": "Reliable improvement",
             "reliable_recovery": "Reliable recovery",
             "reliable_deterioration": "Reliable deterioration",
             "no_reliable_change": "No reliable change"}


@router.get("/clinics/{clinic_id}/outcomes", response_class=HTMLResponse)
def outcomes(clinic_id: str, request: Request, principal: PagePrincipal,
             view: CohortDep) -> Response:
    """The clinic's cohort figures (``CohortView.outcomes``: what ``GET /clinics/{id}/outcomes``
    returns) and the same figures by month of discharge, as tables and a chart. Researcher
    only (403); another clinic: 404, as the API. The caller's own clinic without episodes
    says so (the API answers 404 there; this page is a researcher's landing page)."""
    require_role(principal, "researcher")
    require_clinic(request, clinic_id, principal)
    figures, months = view.overview(clinic_id)
    if figures.episodes == 0:
        return render(request, "outcomes_empty.html", {
            "title": f"Outcomes of {clinic_id}", "clinic_id": clinic_id})
    talking = [f for _, f in months if f.talking_therapies is not None]
    return render(request, "outcomes.html", {
        "title": f"Outcomes of {clinic_id}", "clinic_id": clinic_id, "figures": figures,
        "months": months, "milestones": MILESTONE_LABELS, "charted": CHARTED,
        "tt_labels": TT_LABELS, "tt_by_month": bool(talking),
        "chart": rates_chart(clinic_id, months)})


def rates_chart(clinic_id: str, months: list[tuple[str, CohortFigures]]) -> charts.Figure | None:
    """The rates-by-month chart (percent of evaluable episodes discharged that month, one line
    per outcome in ``CHARTED``); None without a discharged episode. ``charts`` keeps the last
    figures it drew: the same figures are not drawn again."""
    if not months:
        return None
    chart = charts.RatesChart(
        months=tuple(month for month, _ in months),
        series=tuple(charts.RateSeries(MILESTONE_LABELS[name].lower(),
                                       tuple(f.rates.get(name) for _, f in months))
                     for name in CHARTED))
    return charts.rates_figure(
        chart, figure_id="chart-rates",
        title=f"Outcome rates of {clinic_id} by month of discharge",
        description=(f"Percent of evaluable episodes discharged each month that reached "
                     f"{', '.join(CHARTED)}, {months[0][0]} to {months[-1][0]}; the table "
                     f"below holds the same figures."))


# -- re-scoring runs ------------------------------------------------------------------------

def compared_rates(figures: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of the now-vs-new table from a run's figures (``CohortFigures`` as JSON data on
    each side): label, value now, value new, difference (percentage points, 0.1, for rates;
    None when either side is None). Empty while the run has no figures."""
    if not figures:
        return []
    now, new = figures["now"], figures["new"]

    def row(label: str, before: Any, after: Any, unit: str) -> dict[str, Any]:
        diff = (round(after - before, 1) if before is not None and after is not None else None)
        return {"label": label, "now": before, "new": after, "diff": diff, "unit": unit}

    rows = [row("Episodes", now["episodes"], new["episodes"], ""),
            row("Evaluable", now["evaluable"], new["evaluable"], "")]
    rows += [row(MILESTONE_LABELS[m], now["rates"].get(m), new["rates"].get(m), "%")
             for m in MILESTONES]
    rows += [row("Median days to response", now["median_days_to_response"],
                 new["median_days_to_response"], " days"),
             row("Median days to full remission", now["median_days_to_remission"],
                 new["median_days_to_remission"], " days")]
    tt_now, tt_new = now.get("talking_therapies"), new.get("talking_therapies")
    if tt_now or tt_new:
        rows += [row(f"NHS Talking Therapies {label.lower()}",
                     (tt_now or {}).get(key, {}).get("percent"),
                     (tt_new or {}).get(key, {}).get("percent"), "%")
                 for key, label in TT_LABELS.items()]
    return rows


@router.get("/rescorings/{run_id}", response_class=HTMLResponse)
def rescoring(run_id: str, request: Request, principal: PagePrincipal, services: ServicesDep,
              cursor: str = "") -> Response:
    """A shadow run: status, progress, criteria, who started it and its as-of; the figures now
    and under the run's criteria; the changed episodes, 50 a page (``RescoringStore.changes``).
    Researcher only (403); another clinic's run, a missing one and a CLI run over every clinic:
    404 (``guard.page_run``)."""
    require_role(principal, "researcher")
    uuid = page_run(request, run_id, principal)
    if len(cursor) > 64:
        raise PageError(422, "cursor: at most 64 characters (the last episode id shown)")
    run = services.rescorings.run(uuid)
    if run is None:  # dropped between the guard and here
        raise PageError(404, f"no re-scoring run {uuid}")
    items, after = services.rescorings.changes(uuid, cursor, PAGE_SIZE)
    url = request.url.include_query_params(cursor=after) if after else None
    total = run["total"]
    return render(request, "rescoring.html", {
        "title": f"Re-scoring run {uuid}", "run": run, "run_id": str(uuid),
        "progress": round(100 * run["processed"] / total, 1) if total else None,
        "compare": compared_rates(run["figures"]), "changes": items,
        "next_url": f"{url.path}?{url.query}" if url else None, "label": decision_label,
        "when": when})


def marked(now: list[dict[str, Any]], new: list[dict[str, Any]],
           diff: Mapping[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]],
                                                                list[dict[str, Any]]]:
    """Both histories with each decision's difference in words (``mark``): before, "removed"
    or "moved to <date>"; after, "added" or "moved from <date>"; "" when on both sides alike
    (``domain.rescoring.compare``'s added/removed/moved)."""
    def key(d: Mapping[str, Any]) -> tuple[Any, ...]:
        return (d["type"], d["date"], d.get("degree"), d.get("onset"))

    removed = {key(d) for d in diff.get("removed", [])}
    added = {key(d) for d in diff.get("added", [])}
    moved_from = {(m["type"], m.get("degree"), m["from"]): m["to"] for m in diff.get("moved", [])}
    moved_to = {(m["type"], m.get("degree"), m["to"]): m["from"] for m in diff.get("moved", [])}

    def side(decisions: list[dict[str, Any]], gone: set[tuple[Any, ...]], word: str,
             moves: dict[tuple[Any, ...], str], preposition: str) -> list[dict[str, Any]]:
        out = []
        for d in decisions:
            where = moves.get((d["type"], d.get("degree"), d["date"]))
            mark = (f"moved {preposition} {where}" if where else
                    word if key(d) in gone else "")
            out.append({**d, "label": decision_label(d), "mark": mark})
        return out

    return (side(now, removed, "removed", moved_from, "to"),
            side(new, added, "added", moved_to, "from"))


@router.get("/rescorings/{run_id}/episodes/{episode_id}", response_class=HTMLResponse)
def rescoring_episode(run_id: str, episode_id: str, request: Request, principal: PagePrincipal,
                      services: ServicesDep) -> Response:
    """One episode's stage history now (before) and under the run's criteria (after), side by
    side, each decision's difference said in words. 404 for an episode not in the run."""
    require_role(principal, "researcher")
    run_uuid = page_run(request, run_id, principal)
    episode_uuid = page_episode(request, episode_id, principal)
    run = services.rescorings.run(run_uuid)
    result = services.rescorings.episode(run_uuid, episode_uuid)
    if run is None or result is None:
        raise PageError(404, f"no episode {episode_uuid} in re-scoring run {run_uuid}")
    before, after = marked(result["now"], result["new"], result["diff"] or {})
    return render(request, "rescoring_episode.html", {
        "title": f"Episode {episode_uuid} under {run['criteria']['id']}", "run": run,
        "run_id": str(run_uuid), "episode_id": str(episode_uuid), "result": result,
        "before": before, "after": after, "when": when})


# -- criteria sets --------------------------------------------------------------------------

@router.get("/criteria", response_class=HTMLResponse)
def criteria(request: Request, principal: PagePrincipal, services: ServicesDep) -> Response:
    """Every criteria set and version: the built-in ones, then each custom set's versions in
    registration order (``criteria_versions``: who registered it and when). Any role."""
    rows = [row for ident in [*BUILTIN, *(c.id for c in services.app.custom_criteria())]
            for row in services.app.criteria_versions(ident)]
    return render(request, "criteria.html", {"title": "Criteria sets", "rows": rows, "when": when})
