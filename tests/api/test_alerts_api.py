"""Alerts over HTTP (ADR 0031): GET /episodes/{id}/alerts, POST .../acknowledge and .../resolve,
POST /episodes/{id}/support-reviews: the lifecycle, each 404/409/422 (nothing changes), another
clinic's episode (404), roles (an auditor reads, only a clinician writes). Each test runs in
memory and on PostgreSQL (the ``api`` fixture)."""

from __future__ import annotations

from typing import Any

from api_helpers import PROBLEM_TYPE, Api
from local_issuer import SUB, bearer

from domain.signals.packs import get_rule_pack

POSITIVE = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17, item 9 answered 1
REVIEW = {"alliance": {"rating": 4, "note": "good rapport"}, "motivation": {"rating": 2},
          "social_support": {"rating": 3}, "life_events": {"rating": 1, "note": "job loss"}}


def safety(api: Api) -> tuple[str, str]:
    """An episode of clinic-a with one safety alert: (episode id, alert id)."""
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", items=POSITIVE, assessment_id="a-1")
    (alert,) = api.get(f"/episodes/{episode_id}/alerts")["items"]
    return episode_id, alert["alert_id"]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def unprocessable(response: Any) -> None:
    """A 422 problem (a schema's ``validation-error`` or a domain code such as
    ``invalid-input``)."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE


def version(api: Api, episode_id: str) -> int:
    value: int = api.get(f"/episodes/{episode_id}")["version"]
    return value


def test_the_alert_list_and_its_lifecycle(api: Api) -> None:
    episode_id, alert_id = safety(api)
    page = api.get(f"/episodes/{episode_id}/alerts")
    (item,) = page["items"]
    assert page["next"] is None
    assert {k: item[k] for k in ("kind", "status", "raised_on", "rule", "assessment_id",
                                 "evidence", "acknowledged_by", "action")} == {
        "kind": "safety", "status": "open", "raised_on": "2026-01-05",
        "rule": get_rule_pack("phq9-item9").ref(), "assessment_id": "a-1",
        "evidence": {"item9": 1, "score": 17}, "acknowledged_by": None, "action": None}
    assert item["explanation"].startswith("PHQ-9 item 9 (thoughts of death or self-harm) "
                                          "answered 1 on 2026-01-05")
    url = f"/episodes/{episode_id}/alerts/{alert_id}"
    acknowledged = api.client.post(f"{url}/acknowledge",
                                   json={"action": "contacted_patient", "note": "called"})
    assert acknowledged.status_code == 200, acknowledged.text
    body = acknowledged.json()
    assert acknowledged.headers["ETag"] == f'"{body["version"]}"'
    assert int(acknowledged.headers["X-Ledger-Position"]) == body["position"]
    assert {k: body["alert"][k] for k in ("alert_id", "status", "action", "note",
                                          "acknowledged_by")} == {
        "alert_id": alert_id, "status": "acknowledged", "action": "contacted_patient",
        "note": "called", "acknowledged_by": SUB}
    problem(api.client.post(f"{url}/acknowledge", json={"action": "other"}), 409, "alert-state")
    resolved = api.client.post(f"{url}/resolve", json={"reason": "seen in session"})
    assert resolved.status_code == 200, resolved.text
    assert {k: resolved.json()["alert"][k] for k in ("status", "resolution", "resolved_by")} == {
        "status": "resolved", "resolution": "seen in session", "resolved_by": SUB}
    before = version(api, episode_id)
    problem(api.client.post(f"{url}/resolve", json={"reason": "again"}), 409, "alert-state")
    problem(api.client.post(f"{url}/acknowledge", json={"action": "other"}), 409, "alert-state")
    assert version(api, episode_id) == before
    (item,) = api.get(f"/episodes/{episode_id}/alerts")["items"]
    assert (item["status"], item["action"], item["acknowledged_by"]) == (
        "resolved", "contacted_patient", SUB)


def test_open_to_resolved_and_a_stale_if_match(api: Api) -> None:
    episode_id, alert_id = safety(api)
    url = f"/episodes/{episode_id}/alerts/{alert_id}/resolve"
    current = version(api, episode_id)
    problem(api.client.post(url, json={"reason": "r"}, headers={"If-Match": f'"{current - 1}"'}),
            409, "version-conflict")
    response = api.client.post(url, json={"reason": "false positive"},
                               headers={"If-Match": f'"{current}"'})
    assert response.status_code == 200, response.text
    assert response.json()["alert"]["status"] == "resolved"


def test_each_404_and_422_changes_nothing(api: Api) -> None:
    episode_id, alert_id = safety(api)
    before = version(api, episode_id)
    url = f"/episodes/{episode_id}/alerts"
    problem(api.client.post(f"{url}/no-such-alert/acknowledge", json={"action": "other"}), 404,
            "alert-not-found")
    problem(api.client.post(f"{url}/no-such-alert/resolve", json={"reason": "r"}), 404,
            "alert-not-found")
    for body in ({"action": "called"}, {}, {"action": "other", "note": "x" * 2001},
                 {"action": "other", "extra": 1}, {"action": "other", "note": "a\x00b"}):
        unprocessable(api.client.post(f"{url}/{alert_id}/acknowledge", json=body))
    for body in ({}, {"reason": ""}, {"reason": 7}):
        unprocessable(api.client.post(f"{url}/{alert_id}/resolve", json=body))
    problem(api.client.post(f"{url}/{alert_id}/resolve", json={"reason": "   "}), 422,
            "invalid-input")
    reviews = f"/episodes/{episode_id}/support-reviews"
    for body in ({**REVIEW, "alliance": {"rating": 0}}, {**REVIEW, "alliance": {"rating": 6}},
                 {k: v for k, v in REVIEW.items() if k != "motivation"},
                 {**REVIEW, "mood": {"rating": 3}}, {**REVIEW, "administered_on": "2026-13-01"},
                 {**REVIEW, "alliance": {"rating": "4"}}):
        unprocessable(api.client.post(reviews, json=body))
    problem(api.client.post(reviews, json={**REVIEW, "administered_on": "2025-12-31"}), 422,
            "invalid-input")
    problem(api.client.post(reviews, json={**REVIEW, "administered_on": "2028-06-01"}), 422,
            "future-date")
    problem(api.client.post(reviews, json={**REVIEW, "alert_id": "nope"}), 404,
            "alert-not-found")
    problem(api.client.get("/episodes/not-a-uuid/alerts"), 404, "episode-not-found")
    problem(api.client.get(f"{url}?limit=0"), 422, "validation-error")
    assert version(api, episode_id) == before


def test_a_support_review_after_an_alert(api: Api) -> None:
    episode_id, alert_id = safety(api)
    response = api.client.post(f"/episodes/{episode_id}/support-reviews",
                               json={**REVIEW, "alert_id": alert_id,
                                     "administered_on": "2026-01-08"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert body["review_id"] and body["stage"] == "episode"
    (event,) = [e for e in api.get(f"/episodes/{episode_id}/audit")["items"]
                if e["type"] == "SupportReviewRecorded"]
    assert event["data"]["alert_id"] == alert_id
    assert event["data"]["domains"]["motivation"] == {"rating": 2, "note": ""}
    # a closed episode takes no review (409), but its alerts can still be completed
    closed = api.client.post(f"/episodes/{episode_id}/close", json={"discharged_on": "2026-02-01"})
    assert closed.status_code == 200, closed.text
    problem(api.client.post(f"/episodes/{episode_id}/support-reviews", json=REVIEW), 409,
            "episode-closed")
    done = api.client.post(f"/episodes/{episode_id}/alerts/{alert_id}/resolve",
                           json={"reason": "discharged to GP care"})
    assert done.status_code == 200, done.text


def test_pages_order_and_another_clinics_episode(api: Api) -> None:
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", items=POSITIVE)                     # safety
    api.record(episode_id, "2026-02-02", 18)                                 # off track, week 4
    api.record(episode_id, "2026-02-09", items=[2, 2, 2, 2, 2, 2, 2, 2, 3])  # safety
    first = api.get(f"/episodes/{episode_id}/alerts", limit=2)
    assert [(a["kind"], a["raised_on"]) for a in first["items"]] == [
        ("safety", "2026-02-09"), ("safety", "2026-01-05")]
    second = api.client.get(first["next"]).json()
    assert [(a["kind"], a["raised_on"]) for a in second["items"]] == [("off_track", "2026-02-02")]
    assert second["next"] is None
    assert second["items"][0]["rule"] == get_rule_pack("schueller2015-phq9").ref()
    alert_id = second["items"][0]["alert_id"]
    south = bearer(roles=["clinician", "auditor"], clinics=["clinic-b"])
    problem(api.client.get(f"/episodes/{episode_id}/alerts", headers=south), 404,
            "episode-not-found")
    problem(api.client.post(f"/episodes/{episode_id}/alerts/{alert_id}/acknowledge",
                            json={"action": "other"}, headers=south), 404, "episode-not-found")
    problem(api.client.post(f"/episodes/{episode_id}/support-reviews", json=REVIEW,
                            headers=south), 404, "episode-not-found")
    # clinic-b's own episode does not reach clinic-a's alert through its path either
    other = api.open(clinic_id="clinic-b", patient_ref="pt-b")
    problem(api.client.post(f"/episodes/{other}/alerts/{alert_id}/acknowledge",
                            json={"action": "other"}, headers=south), 404, "alert-not-found")
    assert api.get(f"/episodes/{episode_id}/alerts")["items"][0]["status"] == "open"


def test_an_auditor_reads_alerts_and_cannot_acknowledge(api: Api) -> None:
    episode_id, alert_id = safety(api)
    auditor = bearer(roles=["auditor"], clinics=["clinic-a"])
    listed = api.client.get(f"/episodes/{episode_id}/alerts", headers=auditor)
    assert listed.status_code == 200, listed.text
    url = f"/episodes/{episode_id}/alerts/{alert_id}"
    for path, body in ((f"{url}/acknowledge", {"action": "other"}),
                       (f"{url}/resolve", {"reason": "r"}),
                       (f"/episodes/{episode_id}/support-reviews", REVIEW)):
        problem(api.client.post(path, json=body, headers=auditor), 403, "forbidden")
    researcher = bearer(roles=["researcher"], clinics=["clinic-a"])
    problem(api.client.get(f"/episodes/{episode_id}/alerts", headers=researcher), 403,
            "forbidden")
    (item,) = api.get(f"/episodes/{episode_id}/alerts")["items"]
    assert item["status"] == "open"


def test_a_new_alert_between_pages_neither_repeats_nor_hides_an_alert(api: Api) -> None:
    # review 13: an offset cursor repeated page 1's alert on page 2 when a new safety alert
    # (listed first) was raised between the pages. The cursor is the last row's sort key.
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", items=POSITIVE, assessment_id="a-1")
    api.record(episode_id, "2026-01-12", items=POSITIVE, assessment_id="a-2")
    first = api.get(f"/episodes/{episode_id}/alerts", limit=1)
    assert [a["assessment_id"] for a in first["items"]] == ["a-2"]
    api.record(episode_id, "2026-01-19", items=POSITIVE, assessment_id="a-3")  # listed first
    second = api.client.get(first["next"]).json()
    assert [a["assessment_id"] for a in second["items"]] == ["a-1"]
    assert second["next"] is None
    # the same cursor kept by a client: the alerts after a-2 in the list's order, not offset 1
    assert [a["assessment_id"] for a in api.get(f"/episodes/{episode_id}/alerts", limit=5)[
        "items"]] == ["a-3", "a-2", "a-1"]


def test_a_bad_alerts_cursor_is_a_422_problem(api: Api) -> None:
    episode_id, _ = safety(api)
    for cursor in ("1", "-1", str(2**62), "x", "3.1.1", "0.1", "0.739000.1.2", "0." + "9" * 30):
        unprocessable(api.client.get(f"/episodes/{episode_id}/alerts",
                                     params={"cursor": cursor}))
