"""GET /clinics/{clinic_id}/caseload (ADR 0032): the order (safety, off-track, overdue, the rest;
within a group the oldest unresolved alert of its kind, then the most days since the last
assessment, then the opening order), each filter, pages, roles and another clinic, and /health's
safety_overdue at exactly OUTCOMES_SAFETY_ACK_HOURS and just under. The clock stands at
2027-12-31 UTC (api_helpers.NOW) but for /health's boundary."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from api_helpers import Api
from fastapi.testclient import TestClient
from local_issuer import bearer

from api import create_app
from bootstrap import Settings, build
from domain.episode import Episode

CLINIC = "clinic-a"
URL = f"/clinics/{CLINIC}/caseload"
ITEM9 = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17, item 9 answered 1: a safety alert
TODAY = date(2027, 12, 31)


def days(on: str) -> int:
    """Days from ``on`` to the clock's 2027-12-31."""
    return (TODAY - date.fromisoformat(on)).days


def follow(api: Api, url: str) -> Any:
    """GET a ``next`` URL as given (its query is the cursor and the filters)."""
    response = api.client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def all_items(api: Api, **params: Any) -> list[dict[str, Any]]:
    """Every item of the caseload, following ``next``."""
    body = api.get(URL, **params)
    items = body["items"]
    while body["next"]:
        body = follow(api, body["next"])
        items += body["items"]
    return items


@pytest.fixture
def caseload(api: Api, client: TestClient) -> dict[str, str]:
    """Nine open episodes of clinic-a (opened 2026-01-05, in this order), one of clinic-b and
    one closed: safety alerts raised in the order safe_old then safe_new (safe_new's last
    assessment is older, which does not count across the alert's age), one off track at week 4
    (PHQ-9 20 at day 28, Schueller 2015 >= 17), one flagged overdue, and the rest: tied_late
    opened before tied_early, both last assessed 2026-01-05; never_assessed waits since its
    opening day (same day); responded last assessed 2026-01-26; a QIDS-SR16 episode."""
    ids = {}
    ids["tied_late"] = api.open(patient_ref="p-tied-late")
    ids["safe_old"] = api.open(patient_ref="p-safe-old")
    ids["tied_early"] = api.open(patient_ref="p-tied-early")
    ids["off"] = api.open(patient_ref="p-off")
    ids["safe_new"] = api.open(patient_ref="p-safe-new")
    ids["overdue"] = api.open(patient_ref="p-overdue")
    ids["never_assessed"] = api.open(patient_ref="p-never")
    ids["responded"] = api.open(patient_ref="p-responded")
    ids["qids"] = api.open(patient_ref="p-qids", instrument="QIDS-SR16")
    ids["other_clinic"] = api.open(patient_ref="p-other", clinic_id="clinic-b")
    ids["closed"] = api.open(patient_ref="p-closed")
    api.record(ids["tied_late"], "2026-01-05", 12)
    api.record(ids["tied_early"], "2026-01-05", 12)
    api.record(ids["safe_old"], "2026-01-19", items=ITEM9)
    api.record(ids["safe_new"], "2026-01-05", items=ITEM9)
    api.record_all(ids["off"], [("2026-01-05", 20), ("2026-02-02", 20)])
    api.record(ids["overdue"], "2026-01-12", 14)
    api.record_all(ids["responded"], [("2026-01-05", 18), ("2026-01-12", 16),
                                      ("2026-01-19", 13), ("2026-01-26", 8)])
    api.record(ids["qids"], "2026-01-12", 15, instrument="QIDS-SR16")
    api.record(ids["other_clinic"], "2026-01-05", items=ITEM9)
    api.record(ids["closed"], "2026-01-05", 12)
    assert client.post(f"/episodes/{ids['closed']}/close",
                       json={"discharged_on": "2026-02-01"}).status_code == 200
    services = client.app.state.services
    services.app.flag_overdue(UUID(ids["overdue"]), today=TODAY, overdue_days=28,
                              recorded_by="sweeper")
    return ids


ORDER = ["safe_old", "safe_new", "off", "overdue", "tied_late", "tied_early", "never_assessed",
         "qids", "responded"]


def test_the_caseload_lists_safety_then_off_track_then_overdue_then_the_rest(api, caseload):
    items = all_items(api)
    assert [i["episode_id"] for i in items] == [caseload[k] for k in ORDER]
    by_key = {k: i for k, i in zip(ORDER, items, strict=True)}
    assert by_key["safe_old"] == {
        "episode_id": caseload["safe_old"], "patient_ref": "p-safe-old", "instrument": "PHQ-9",
        "stage": "episode", "latest": {"score": 17, "on": "2026-01-19"},
        "alerts": {"safety": 1, "off_track": 0, "overdue": 0}, "on_track": "not_yet",
        "days_since_assessment": days("2026-01-19"), "safety_overdue": True,
        "opened_on": "2026-01-05"}
    assert days("2026-01-19") == 711
    assert by_key["off"]["alerts"] == {"safety": 0, "off_track": 1, "overdue": 0}
    assert by_key["off"]["on_track"] == "not_on_track"
    assert by_key["off"]["latest"] == {"score": 20, "on": "2026-02-02"}
    assert by_key["overdue"]["alerts"] == {"safety": 0, "off_track": 0, "overdue": 1}
    assert by_key["overdue"]["days_since_assessment"] == 718
    assert by_key["never_assessed"]["latest"] is None
    assert by_key["never_assessed"]["days_since_assessment"] is None
    assert by_key["responded"]["stage"] == "response"
    assert by_key["responded"]["days_since_assessment"] == 704
    assert by_key["tied_late"]["days_since_assessment"] == 725
    assert not any(i["safety_overdue"] for i in items[2:])


def safety_alert(services: Any, episode_id: str) -> str:
    """The id of the episode's one safety alert."""
    found = [a.alert_id for a in services.app.alerts(UUID(episode_id)) if a.kind == "safety"]
    assert len(found) == 1, found
    return found[0]


def test_an_acknowledged_safety_alert_keeps_its_group_but_is_no_longer_overdue(
        api, client, caseload):
    services = client.app.state.services
    alert_id = safety_alert(services, caseload["safe_old"])
    alert_url = f"/episodes/{caseload['safe_old']}/alerts/{alert_id}"
    acknowledged = client.post(f"{alert_url}/acknowledge", json={
        "action": "contacted_patient", "note": "called, safety plan in place"})
    assert acknowledged.status_code == 200, acknowledged.text
    items = all_items(api)
    assert [i["episode_id"] for i in items][:2] == [caseload["safe_old"], caseload["safe_new"]]
    assert [i["safety_overdue"] for i in items[:2]] == [False, True]
    resolved = client.post(f"{alert_url}/resolve", json={"reason": "reviewed in session"})
    assert resolved.status_code == 200, resolved.text
    # now in the rest, last assessed 2026-01-19: after the QIDS episode's 2026-01-12
    assert [i["episode_id"] for i in all_items(api)] == [caseload[k] for k in (
        "safe_new", "off", "overdue", "tied_late", "tied_early", "never_assessed", "qids",
        "safe_old", "responded")]


@pytest.mark.parametrize(("params", "expected"), [
    ({"kind": "safety"}, ["safe_old", "safe_new"]),
    ({"kind": "off_track"}, ["off"]),
    ({"kind": "overdue"}, ["overdue"]),
    ({"on_track": "not_on_track"}, ["off"]),
    # responded: PHQ-9 8 on day 21, in the week-4 window (days 21-35) and under 17: on track
    ({"on_track": "on_track"}, ["responded"]),
    ({"instrument": "QIDS-SR16"}, ["qids"]),
    ({"stage": "response"}, ["responded"]),
    ({"stage": "response", "kind": "safety"}, []),
])
def test_each_filter_keeps_only_its_episodes_in_caseload_order(api, caseload, params, expected):
    assert [i["episode_id"] for i in all_items(api, **params)] == [caseload[k] for k in expected]


def test_not_yet_is_every_episode_without_a_signal(api, caseload):
    found = [i["episode_id"] for i in all_items(api, on_track="not_yet")]
    assert found == [caseload[k] for k in ORDER if k not in ("off", "responded")]


def test_pages_follow_next_until_null_and_together_are_the_whole_caseload(api, caseload):
    pages = []
    body = api.get(URL, limit=2)
    pages.append(body["items"])
    while body["next"]:
        assert "limit=2" in body["next"]
        # the cursor is opaque: no clinical date or timestamp of the last row in plain text
        assert re.search(r"\d{4}-\d{2}-\d{2}|%7C|\|", body["next"]) is None, body["next"]
        body = follow(api, body["next"])
        pages.append(body["items"])
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [i["episode_id"] for p in pages for i in p] == [caseload[k] for k in ORDER]
    filtered = api.get(URL, limit=1, kind="safety")
    assert [i["episode_id"] for i in filtered["items"]] == [caseload["safe_old"]]
    assert "kind=safety" in filtered["next"]
    second = follow(api, filtered["next"])
    assert [i["episode_id"] for i in second["items"]] == [caseload["safe_new"]]
    assert second["next"] is None


def test_a_malformed_cursor_or_filter_is_a_422_problem(client, caseload):
    for params in ({"cursor": "12"}, {"cursor": "MHwyMDI2"}, {"cursor": "a|b"},
                   {"kind": "urgent"}, {"on_track": "maybe"},
                   {"stage": "cured"}, {"limit": 0}, {"sort": "name"}):
        response = client.get(URL, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_another_clinic_is_404_and_a_role_without_access_is_403(client, caseload):
    only_a = bearer(clinics=[CLINIC])
    other = client.get("/clinics/clinic-b/caseload", headers=only_a)
    assert other.status_code == 404, other.text
    unknown = client.get("/clinics/no-such-clinic/caseload", headers=only_a)
    assert unknown.status_code == 404
    assert other.json()["type"] == unknown.json()["type"]
    assert client.get(URL, headers=bearer(roles=["auditor"], clinics=[CLINIC])).status_code == 200
    for role in ("researcher", "admin"):
        response = client.get(URL, headers=bearer(roles=[role], clinics=[CLINIC]))
        assert response.status_code == 403, (role, response.text)
    assert client.get(URL, headers={"Authorization": ""}).status_code == 401


def test_the_other_clinic_sees_only_its_own(api, caseload):
    items = api.get("/clinics/clinic-b/caseload")["items"]
    assert [i["episode_id"] for i in items] == [caseload["other_clinic"]]
    assert items[0]["alerts"]["safety"] == 1


def test_an_empty_caseload_of_ones_own_clinic_is_200(api):
    assert api.get(URL) == {"items": [], "next": None}


# -- /health's safety_overdue -----------------------------------------------------------------

class Clock:
    """A clock the test moves (no waiting: the alert's own timestamp plus a duration)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("hours", [24, 2])
def test_health_counts_safety_alerts_unacknowledged_for_the_ack_hours(settings: Settings,
                                                                     hours: int):
    settings = settings.model_copy(update={"safety_ack_hours": hours})
    clock = Clock(datetime(2027, 12, 31, tzinfo=UTC))
    services = build(settings, clock=clock)
    try:
        with TestClient(create_app(settings, services=services), headers=bearer()) as client:
            api = Api(client)
            first, second = api.open(patient_ref="p-1"), api.open(patient_ref="p-2")
            api.record(first, "2026-01-05", items=ITEM9)
            api.record(second, "2026-01-05", items=ITEM9)
            raised = [e.timestamp for e in services.app.events.get(UUID(first))
                      if isinstance(e, Episode.AlertRaised)]
            assert len(raised) == 1
            due = raised[0] + timedelta(hours=hours)
            services.read_models.catch_up(["caseload"])
            clock.now = due - timedelta(microseconds=1)
            assert client.get("/health").json()["safety_overdue"] == 0
            assert [i["safety_overdue"] for i in api.get(URL)["items"]] == [False, False]
            clock.now = due
            assert client.get("/health").json()["safety_overdue"] == 1
            assert [i["safety_overdue"] for i in api.get(URL)["items"]] == [True, False]
            clock.now = due + timedelta(days=1)
            assert client.get("/health").json()["safety_overdue"] == 2
            services.app.acknowledge_alert(UUID(first), safety_alert(services, first),
                                           action="safety_plan_reviewed", recorded_by="dr-test")
            services.read_models.catch_up(["caseload"])
            assert client.get("/health").json()["safety_overdue"] == 1
    finally:
        services.close()


def test_health_reports_no_safety_alert_as_zero(client):
    assert client.get("/health").json()["safety_overdue"] == 0

