"""A seeded store and a live server for the browser tests (tests/ui/test_e2e*.py, the screenshots),
the seeded pages by name, signing in through the sign-in page and the keyboard checks.

``live_server(folder)`` builds the services on SQLite in ``folder`` (development mode: no issuer,
the dev sign-in on loopback) with a fixed clock (``NOW``, 2026-03-09T12:00Z, so "days since the
last assessment" and the like never move), seeds them (``seed``) through the same application
methods the API routes call, and serves ``api.create_app(settings, services=...)`` with uvicorn in
a background thread on ``127.0.0.1:<free port>`` until the context ends.

Event timestamps (recorded times, shown in UTC on the pages) come from the event library's own
clock, not the application's; while the server lives it is replaced by ``EventClock``: one
second per event from ``EVENT_EPOCH`` (2026-03-09T09:00Z), so recorded times, and so every
page, are the same on every run. They stay before ``NOW``, the shadow run's as-of.

The seed (clinic-north unless said):
- the README's first scenario: pt-7f3a, acnp2006, opened 2026-01-05, PHQ-9 18, 16, 13, 8, 6, 4,
  3, 4, 2 weekly (assessment ids ``phq-<date>``): response on 2026-01-26, full remission on
  2026-03-02 (21 days below 5 from 2026-02-09);
- pt-91c2, off track: PHQ-9 20, 19, 18 on 2026-01-05, -19, 02-02 (18 at week 4 >= 17, the
  README's Alerts section), the alert open;
- pt-2b8e, a safety alert: PHQ-9 items 2,2,2,2,2,2,2,2,1 (17, item 9 = 1) on 2026-03-02;
- pt-4d10, overdue: PHQ-9 14 on 2026-01-12, flagged overdue on 2026-03-09 (56 days);
- six closed episodes discharged in December 2025, January and February 2026 (two a month:
  ``CLOSED``), for the outcomes page;
- the README's clinic variant ``clinic-north-recovery-26w`` of frank1991, by admin-ito;
- one completed shadow run (``RUN_ID``) of clinic-north under frank1991 as known at ``NOW``,
  requested by res-park (its finished_at from the event clock too): the scenario's episode
  changes (partial remission under frank1991).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID, uuid5

import pytest
import uvicorn
from eventsourcing import domain as es_domain
from playwright.sync_api import Page, expect

from api import create_app
from bootstrap import Services, Settings, build

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
EVENT_EPOCH = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
CLINIC = "clinic-north"
NAMESPACE = UUID("6f1d3c2e-1a4b-4c5d-9e8f-0a1b2c3d4e5f")
CUSTOM_CRITERIA = "clinic-north-recovery-26w"  # the README's clinic variant, for the criteria page
RUN_ID = UUID("00000000-0000-4000-8000-000000000014")

# The README's first scenario (weekly from the opening).
SCENARIO = ("pt-7f3a", date(2026, 1, 5), [18, 16, 13, 8, 6, 4, 3, 4, 2])
LATE = {"administered_on": "2026-02-20", "total": 7}  # the README's late paper form
OFF_TRACK = ("pt-91c2", [("2026-01-05", 20), ("2026-01-19", 19), ("2026-02-02", 18)])
SAFETY = ("pt-2b8e", "2026-03-02", [2, 2, 2, 2, 2, 2, 2, 2, 1])
OVERDUE = ("pt-4d10", "2026-01-12", 14)
# patient, opened on, fortnightly PHQ-9 totals, discharged on
CLOSED = (
    ("pt-c101", date(2025, 9, 1), [20, 15, 9, 6, 4, 3, 3, 2], date(2025, 12, 15)),
    ("pt-c102", date(2025, 9, 15), [16, 15, 15, 14, 14, 13], date(2025, 12, 22)),
    ("pt-c103", date(2025, 10, 6), [19, 14, 9, 7, 5, 4, 4], date(2026, 1, 12)),
    ("pt-c104", date(2025, 10, 20), [22, 18, 12, 10, 9, 11], date(2026, 1, 26)),
    ("pt-c105", date(2025, 11, 3), [15, 10, 6, 4, 3, 2, 3], date(2026, 2, 9)),
    ("pt-c106", date(2025, 11, 17), [18, 17, 16, 19, 17, 18], date(2026, 2, 23)),
)


def episode_id(patient_ref: str) -> UUID:
    """The seed's episode id of ``patient_ref`` (a UUID5, the same on every run)."""
    return uuid5(NAMESPACE, patient_ref)


class EventClock:
    """A stand-in for ``eventsourcing.domain.datetime_now_with_tzinfo``: ``EVENT_EPOCH`` plus one
    second per call (thread-safe), so events get the same timestamps on every run."""

    def __init__(self, start: datetime = EVENT_EPOCH) -> None:
        self.start, self._count, self._lock = start, itertools.count(), threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.start + timedelta(seconds=next(self._count))


class _EventDatetime(datetime):
    """``datetime`` whose ``now`` is the event library's clock (patched: ``EventClock``)."""

    @classmethod
    def now(cls, tz: Any = None) -> _EventDatetime:
        stamp = es_domain.datetime_now_with_tzinfo()
        return cls.fromtimestamp(stamp.timestamp(), tz or UTC)


@contextmanager
def fixed_event_times(start: datetime = EVENT_EPOCH) -> Iterator[EventClock]:
    """Events created inside get ``EventClock`` timestamps (the library's clock, patched)."""
    clock = EventClock(start)
    with mock.patch.object(es_domain, "datetime_now_with_tzinfo", clock):
        yield clock


def settings_in(folder: Path) -> Settings:
    """Development mode on SQLite in ``folder``: no rate limit, no overdue sweeps."""
    return Settings(store="sqlite", sqlite_path=folder / "outcomes.sqlite", rate_limit="off",
                    overdue_sweep_interval=0, checkpoint_interval=0)


def seed(services: Services) -> dict[str, UUID]:
    """Record the module docstring's episodes and run; returns patient_ref -> episode id (and
    ``"run"`` -> the run id)."""
    app, ids = services.app, {}

    def opened(ref: str, on: date, criteria: str = "acnp2006") -> UUID:
        ids[ref] = episode_id(ref)
        app.open_episode(patient_ref=ref, clinic_id=CLINIC, recorded_by="dr-lee",
                         criteria=criteria, opened_on=on, episode_id=ids[ref])
        return ids[ref]

    ref, start, totals = SCENARIO
    scenario = opened(ref, start)
    for week, total in enumerate(totals):
        on = start + timedelta(weeks=week)
        app.record_assessment(scenario, instrument="PHQ-9", administered=on, total=total,
                              assessment_id=f"phq-{on.isoformat()}", recorded_by="dr-lee")
    ref, rows = OFF_TRACK
    off = opened(ref, date(2026, 1, 5))
    for on_text, total in rows:
        app.record_assessment(off, instrument="PHQ-9", administered=date.fromisoformat(on_text),
                              total=total, recorded_by="dr-lee")
    ref, on_text, items = SAFETY
    app.record_assessment(opened(ref, date(2026, 2, 2)), instrument="PHQ-9",
                          administered=date.fromisoformat(on_text), items=items,
                          recorded_by="dr-okafor")
    ref, on_text, total = OVERDUE
    late = opened(ref, date(2026, 1, 5))
    app.record_assessment(late, instrument="PHQ-9", administered=date.fromisoformat(on_text),
                          total=total, recorded_by="dr-lee")
    app.flag_overdue(late, today=NOW.date(), recorded_by="system:overdue-sweep")
    for ref, start, totals, discharged in CLOSED:
        closed = opened(ref, start)
        for fortnight, total in enumerate(totals):
            app.record_assessment(closed, instrument="PHQ-9",
                                  administered=start + timedelta(weeks=2 * fortnight),
                                  total=total, recorded_by="dr-lee")
        app.close_episode(closed, discharged_on=discharged, recorded_by="dr-lee")
    app.register_criteria(criteria_id=CUSTOM_CRITERIA, base="frank1991",
                          params={"recovery_min_days_from_full_onset": 182},
                          source="Clinic North governance, 2026-03", recorded_by="admin-ito")
    with mock.patch("domain.rescoring.uuid4", return_value=RUN_ID):
        run = services.shadow_runs.request(criteria="frank1991", clinic_id=CLINIC,
                                           recorded_by="res-park")
    # the results store stamps finished_at with the wall clock: the event clock's instead
    with mock.patch("projections.rescorings.datetime", _EventDatetime):
        assert services.shadow_runs.execute(run.run_id, workers=1) == "completed"
    services.read_models.catch_up()
    return {**ids, "run": run.run_id}


@dataclass
class Live:
    """A live server: its base URL (``http://127.0.0.1:<port>``), services and seeded ids."""

    base: str
    services: Services
    ids: dict[str, UUID]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live_server(folder: Path) -> Iterator[Live]:
    """The seeded services served by uvicorn on loopback in a thread (module docstring); the
    server stopped and the services closed at the end. Raises RuntimeError when it does not
    start within 30 s."""
    settings = settings_in(folder)
    with fixed_event_times():
        services = build(settings, clock=lambda: NOW)
        try:
            ids = seed(services)
            port = free_port()
            config = uvicorn.Config(create_app(settings, services=services), host="127.0.0.1",
                                    port=port, log_level="warning", lifespan="on")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, name="e2e-server", daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not server.started:  # a start-up wait, not a timed assertion
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the e2e server did not start")
                time.sleep(0.05)
            try:
                yield Live(f"http://127.0.0.1:{port}", services, ids)
            finally:
                server.should_exit = True
                thread.join(timeout=30)
        finally:
            services.close()


# -- the pages, signing in, the keyboard (what the test_e2e* modules share) -------------------

SCENARIO_EPISODE = episode_id("pt-7f3a")
OFF_TRACK_EPISODE = episode_id("pt-91c2")
# page name -> (who reads it, path); every page the issue names, the episode page's options, an
# error page
PAGES: dict[str, tuple[str | None, str]] = {
    "sign-in": (None, "/ui/sign-in"),
    "caseload": ("dr-lee", f"/ui/clinics/{CLINIC}/caseload"),
    "episode": ("dr-lee", f"/ui/episodes/{SCENARIO_EPISODE}"),
    "episode-options": ("dr-lee",
                        f"/ui/episodes/{SCENARIO_EPISODE}?axis=session&voided=1&retracted=1"),
    "episode-alerts": ("dr-lee", f"/ui/episodes/{OFF_TRACK_EPISODE}"),
    "episode-audit": ("auditor-ng", f"/ui/episodes/{SCENARIO_EPISODE}"),
    "outcomes": ("res-park", f"/ui/clinics/{CLINIC}/outcomes"),
    "rescoring": ("res-park", f"/ui/rescorings/{RUN_ID}"),
    "rescoring-episode": ("res-park", f"/ui/rescorings/{RUN_ID}/episodes/{SCENARIO_EPISODE}"),
    "criteria": ("dr-lee", "/ui/criteria"),
    "not-found": ("dr-lee", "/ui/episodes/00000000-0000-4000-8000-000000000000"),
}
FORM_CONTROLS = ("INPUT", "SELECT", "TEXTAREA", "BUTTON")


@pytest.fixture(scope="module", name="live")
def live_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One seeded live server per test module (scenario_helpers)."""
    with live_server(tmp_path_factory.mktemp("e2e")) as served:
        yield served


def sign_in(page: Page, live: Live, user: str) -> None:
    """Sign in as the dev user ``user`` with one click on the sign-in page."""
    page.goto(live.url("/ui/sign-in"))
    page.get_by_role("button", name=f"Sign in as {user}").click()
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()


def visit(page: Page, live: Live, name: str) -> int:
    """Sign in as the page's reader (if any), open it; its HTTP status."""
    who, path = PAGES[name]
    if who is not None:
        sign_in(page, live, who)
    reply = page.goto(live.url(path))
    assert reply is not None
    return reply.status


def skip_link_first(page: Page) -> None:
    """Tab from the top of the page reaches the skip link first."""
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()


def tab_through(page: Page, limit: int = 150) -> list[dict[str, str]]:
    """Tab through the page from the top until the focus leaves it or comes back to the skip
    link; each focused element's tag, name/id and its computed outline (style and width)."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); "
                  "window.scrollTo(0, 0); }")
    seen: list[dict[str, str]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused: dict[str, str] = page.evaluate("""() => { const e = document.activeElement;
            if (!e || e === document.body) return {tag: 'BODY'};
            const s = getComputedStyle(e);
            return {tag: e.tagName, name: e.getAttribute('name') || e.id || e.textContent.trim().slice(0, 40),
                    skip: e.classList.contains('skip') ? '1' : '', style: s.outlineStyle,
                    width: s.outlineWidth}; }""")
        if focused["tag"] == "BODY" or (seen and focused.get("skip")):
            break
        seen.append(focused)
    return seen


def invisible_focus(page: Page) -> list[dict[str, str]]:
    """The form controls Tab reaches whose focus has no outline of 2 px or more."""
    return [f for f in tab_through(page) if f["tag"] in FORM_CONTROLS
            and (f["style"] in ("none", "") or float(f["width"].removesuffix("px") or 0) < 2)]
