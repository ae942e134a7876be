"""One happy path per route of the HTTP API (issue 3), asserting the values it returns."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from api_helpers import PATIENT_REF, V1
from local_issuer import SUB, bearer

ACNP = {"id": "acnp2006", "version": "1.0.0"}
V1_RESPONSE = ("PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26: response under acnp2006 "
               "v1.0.0")
# SPEC V11: weekly PHQ-9 totals, then a score of 6 for 2026-02-05 entered later (back-dated).
V11 = [("2026-01-05", 15), ("2026-01-12", 11), ("2026-01-19", 7), ("2026-01-26", 4),
       ("2026-02-02", 3), ("2026-02-09", 4), ("2026-02-16", 2), ("2026-02-23", 3),
       ("2026-03-02", 2), ("2026-03-09", 3)]
V2 = [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 9), ("2026-02-16", 9),
      ("2026-03-02", 11)]
V6 = [("2026-01-05", 19), ("2026-01-19", 12), ("2026-02-02", 8), ("2026-02-16", 4),
      ("2026-03-02", 3), ("2026-03-16", 2), ("2026-03-30", 12), ("2026-04-13", 14)]
V8 = [("2026-01-05", 8), ("2026-01-19", 6), ("2026-02-02", 4), ("2026-02-16", 3),
      ("2026-03-02", 3), ("2026-03-16", 3)]


def _shape(events):
    return [(e["type"], e["date"], e.get("degree"), e.get("onset")) for e in events]


def _between_writes():
    """A moment strictly after everything recorded so far and before anything recorded next."""
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    return moment


# -- POST /episodes -------------------------------------------------------------------------------

def test_open_episode_returns_201_with_location_and_etag(client):
    response = client.post("/episodes", json={"patient_ref": PATIENT_REF, "clinic_id": "clinic-a",
                                              "opened_on": "2026-01-02"})

    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert body["stage"] == "episode"
    assert {k: body["criteria"][k] for k in ("id", "version")} == ACNP
    assert response.headers["ETag"] == '"1"'
    location = response.headers["Location"]
    assert location.endswith(f"/episodes/{body['episode_id']}")
    summary = client.get(location)
    assert summary.status_code == 200
    assert summary.json()["episode_id"] == body["episode_id"]
    assert summary.json()["opened_on"] == "2026-01-02"


def test_open_episode_under_a_named_variant(api):
    episode_id = api.open(criteria="frank1991|rounding=half_up")

    criteria = api.get(f"/episodes/{episode_id}/stages")["criteria"]
    assert criteria["id"] == "frank1991|rounding=half_up"
    assert criteria["version"] == "1.0.0-draft"


# -- GET /episodes/{id} ---------------------------------------------------------------------------

def test_summary_after_the_v1_course(api, client):
    episode_id = api.open()
    api.record_all(episode_id, V1)

    response = client.get(f"/episodes/{episode_id}")

    summary = response.json()
    assert summary["clinic_id"] == "clinic-a"
    assert summary["patient_ref"] == PATIENT_REF
    assert {k: summary["criteria"][k] for k in ("id", "version")} == ACNP
    assert summary["instrument"] == "PHQ-9"
    assert summary["stage"] == "recovery"
    assert summary["baseline"]["date"] == "2026-01-05"
    assert summary["baseline"]["total"] == 18
    assert summary["baseline"]["severity"] == "moderately severe"
    assert (summary["latest"]["date"], summary["latest"]["total"]) == ("2026-06-22", 1)
    assert summary["latest"]["severity"] == "minimal"
    assert summary["flags"] == {"safety": [], "data_quality": []}
    assert summary["counts"] == {"assessments": 17, "voided": 0, "stage_events": 3,
                                 "retracted": 0}
    assert summary["version"] == 1 + 17 + 3
    assert response.headers["ETag"] == f'"{summary["version"]}"'
    assert summary["closed_on"] is None


def test_summary_flags_safety_item_and_data_quality(api):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", items=[2, 2, 2, 1, 2, 2, 1, 1, 1])
    api.record(episode_id, "2026-01-12", 5, items=[1, 1, 1, 1, 1, 1, 1, 0, 0])

    summary = api.get(f"/episodes/{episode_id}")

    assert summary["flags"] == {"safety": ["SAFETY_ITEM9_POSITIVE"],
                                "data_quality": ["TOTAL_MISMATCH"]}
    assert summary["latest"]["total"] == 7


# -- GET /episodes --------------------------------------------------------------------------------

def test_list_filters_by_clinic_stage_and_patient(api):
    responder = api.open(clinic_id="clinic-f", patient_ref="pseudo-1")
    api.record_all(responder, [("2026-01-05", 18), ("2026-01-26", 8)])
    waiting = api.open(clinic_id="clinic-f", patient_ref="pseudo-2")
    api.open(clinic_id="clinic-g", patient_ref="pseudo-1")

    by_clinic = api.get("/episodes", clinic_id="clinic-f")
    by_stage = api.get("/episodes", clinic_id="clinic-f", stage="response")
    by_patient = api.get("/episodes", patient_ref="pseudo-2")

    assert [e["episode_id"] for e in by_clinic["items"]] == [responder, waiting]
    assert [e["episode_id"] for e in by_stage["items"]] == [responder]
    assert [e["episode_id"] for e in by_patient["items"]] == [waiting]
    assert by_clinic["next"] is None


def test_list_pages_continue_without_overlap(api, client):
    opened = [api.open(clinic_id="clinic-p", patient_ref=f"pseudo-{n}") for n in range(5)]

    first = api.get("/episodes", clinic_id="clinic-p", limit=2)
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    assert "clinic_id=clinic-p" in first["next"]
    pages = [[e["episode_id"] for e in page["items"]] for page in (first, second, third)]
    assert pages == [opened[:2], opened[2:4], opened[4:]]
    assert third["next"] is None


def test_list_default_limit_is_50(api):
    for n in range(51):
        api.open(clinic_id="clinic-big", patient_ref=f"pseudo-{n}")

    page = api.get("/episodes", clinic_id="clinic-big")

    assert len(page["items"]) == 50
    assert page["next"] is not None
    assert len(api.get("/episodes", clinic_id="clinic-big", limit=500)["items"]) == 51


# -- POST /episodes/{id}/assessments --------------------------------------------------------------

def test_record_assessment_returns_the_stage_events_it_caused(api, client):
    episode_id = api.open()
    api.record_all(episode_id, V1[:3])

    response = client.post(f"/episodes/{episode_id}/assessments",
                           json={"assessment_id": "a-0126", "instrument": "PHQ-9",
                                 "administered_on": "2026-01-26", "total": 8})

    assert response.status_code == 201
    body = response.json()
    assert (body["assessment_id"], body["total"], body["severity"], body["flags"]) == (
        "a-0126", 8, "mild", [])
    assert body["stage"] == "response"
    [event] = body["stage_events"]
    assert (event["type"], event["date"], event["degree"], event["onset"]) == (
        "ResponseReached", "2026-01-26", None, None)
    assert event["explanation"] == V1_RESPONSE
    assert event["assessment_id"] == "a-0126"
    assert response.headers["ETag"] == f'"{body["version"]}"'


def test_record_assessment_with_items_and_an_offset_datetime(api):
    episode_id = api.open()

    body = api.record(episode_id, "2026-01-05T09:30:00+01:00", items=[2, 2, 1, 1, None, 1, 1, 0, 0])

    assert body["total"] == 9  # 8 points over 8 answered items, prorated to 9 items
    assert body["severity"] == "mild"
    assert body["flags"] == ["PRORATED"]
    assert body["assessment"]["administered_on"] == "2026-01-05"
    assert body["assessment"]["administered_at"] == "2026-01-05T09:30:00+01:00"


def test_repeating_an_assessment_returns_the_first_result_and_stores_nothing(api, client):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18)
    body = {"assessment_id": "a-0126", "instrument": "PHQ-9", "administered_on": "2026-01-26",
            "total": 8}
    first = client.post(f"/episodes/{episode_id}/assessments", json=body)
    position = api.position()

    again = client.post(f"/episodes/{episode_id}/assessments", json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["stage_events"] == first.json()["stage_events"]
    assert again.json()["version"] == first.json()["version"]
    assert api.position() == position


def test_if_match_with_the_current_version_is_honoured(api, client):
    episode_id = api.open()
    version = client.get(f"/episodes/{episode_id}").headers["ETag"]

    response = client.post(f"/episodes/{episode_id}/assessments", headers={"If-Match": version},
                           json={"instrument": "PHQ-9", "administered_on": "2026-01-05",
                                 "total": 12})

    assert response.status_code == 201
    assert response.headers["ETag"] == '"2"'


# -- POST /episodes/{id}/assessments/{aid}/void ---------------------------------------------------

def test_void_returns_the_retracted_and_asserted_stage_events(api, client):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18)
    api.record(episode_id, "2026-01-12", 8, assessment_id="a-0112")
    api.record(episode_id, "2026-01-19", 9)

    response = client.post(f"/episodes/{episode_id}/assessments/a-0112/void",
                           json={"reason": "entered for the wrong patient"})

    assert response.status_code == 200
    body = response.json()
    assert [(e["type"], e["retracted_type"], e["date"]) for e in body["retracted"]] == [
        ("StageRetracted", "ResponseReached", "2026-01-12")]
    assert _shape(body["stage_events"]) == [("ResponseReached", "2026-01-19", None, None)]
    assert body["stage"] == "response"
    summary = api.get(f"/episodes/{episode_id}")
    assert summary["counts"] == {"assessments": 2, "voided": 1, "stage_events": 1,
                                 "retracted": 1}
    assert response.headers["ETag"] == f'"{summary["version"]}"'


# -- POST /episodes/{id}/close --------------------------------------------------------------------

def test_close_under_nhs_talking_therapies_returns_the_course_outcome(api, client):
    episode_id = api.open(criteria="nhs-talking-therapies-2024")
    api.record_all(episode_id, V2)

    response = client.post(f"/episodes/{episode_id}/close", json={"discharged_on": "2026-03-02"})

    assert response.status_code == 200
    outcome = response.json()["outcome"]
    assert {k: outcome[k] for k in ("eligible", "case_at_start", "recovery",
                                    "reliable_improvement", "reliable_deterioration",
                                    "reliable_recovery", "no_reliable_change")} == {
        "eligible": True, "case_at_start": True, "recovery": False,
        "reliable_improvement": True, "reliable_deterioration": False,
        "reliable_recovery": False, "no_reliable_change": False}
    summary = api.get(f"/episodes/{episode_id}")
    assert summary["closed_on"] == "2026-03-02"
    assert summary["outcome"] == outcome


def test_close_under_a_longitudinal_set_has_no_course_outcome(api, client):
    episode_id = api.open()
    api.record_all(episode_id, V1[:4])

    response = client.post(f"/episodes/{episode_id}/close", json={"discharged_on": "2026-02-01"})

    assert response.status_code == 200
    assert response.json()["outcome"] is None
    assert response.json()["stage"] == "response"


# -- GET /episodes/{id}/stages --------------------------------------------------------------------

def test_stages_list_the_decisions_under_the_criteria_in_force(api, client):
    episode_id = api.open()
    api.record_all(episode_id, V1)
    acnp = next(c for c in api.get("/criteria")["items"] if c["id"] == "acnp2006")

    history = api.get(f"/episodes/{episode_id}/stages")

    assert history["criteria"] == {"id": "acnp2006", "version": "1.0.0", "hash": acnp["hash"]}
    assert _shape(history["events"]) == [
        ("ResponseReached", "2026-01-26", None, None),
        ("RemissionReached", "2026-03-02", "full", "2026-02-09"),
        ("RecoveryConfirmed", "2026-06-22", None, None)]
    assert history["events"][0]["explanation"] == V1_RESPONSE
    for event in history["events"]:
        assert {"type", "date", "degree", "onset", "evidence", "explanation",
                "recorded_at"} <= event.keys()
        assert event["evidence"]["baseline"]["score"] == 18
        assert datetime.fromisoformat(event["recorded_at"]).tzinfo is not None


def test_stages_as_of_shows_what_the_record_showed_then(api):
    """SPEC V11: a back-dated score moves the remission; as_of before the insert shows the old."""
    episode_id = api.open()
    before_anything = _between_writes()
    api.record_all(episode_id, V11)
    before_insert = _between_writes()
    api.record(episode_id, "2026-02-05", 6)
    url = f"/episodes/{episode_id}/stages"

    then = api.get(url, as_of=before_insert.isoformat())["events"]
    now = api.get(url)["events"]
    later = api.get(url, as_of=datetime(2100, 1, 1, tzinfo=UTC).isoformat())["events"]

    assert _shape(then) == [("ResponseReached", "2026-01-19", None, None),
                            ("RemissionReached", "2026-02-16", "full", "2026-01-26")]
    assert _shape(now) == [("ResponseReached", "2026-01-19", None, None),
                           ("RemissionReached", "2026-03-02", "full", "2026-02-09")]
    assert later == now
    assert api.get(url, as_of=before_anything.isoformat())["events"] == []
    assert api.get(url, as_of=before_insert.isoformat())["as_of"] == before_insert.isoformat()


def test_stages_include_retracted_marks_the_retracted_decision(api):
    episode_id = api.open()
    api.record_all(episode_id, V11)
    api.record(episode_id, "2026-02-05", 6)
    url = f"/episodes/{episode_id}/stages"

    events = api.get(url, include_retracted="true")["events"]

    retracted = [e for e in events if e["retracted"]]
    assert _shape(retracted) == [("RemissionReached", "2026-02-16", "full", "2026-01-26")]
    assert retracted[0]["retracted"]["retracted_type"] == "RemissionReached"
    assert retracted[0]["retracted"]["caused_by"].startswith("assessment:")
    assert len(events) == 3
    assert all("retracted" not in e for e in api.get(url)["events"])


# -- GET /episodes/{id}/audit and GET /audit ------------------------------------------------------

def test_episode_audit_lists_its_events_in_order_with_the_acting_user(api, client):
    opened = client.post("/episodes", headers=bearer(sub="clinician-7"),
                         json={"patient_ref": PATIENT_REF, "clinic_id": "clinic-a"})
    episode_id = opened.json()["episode_id"]
    client.post(f"/episodes/{episode_id}/assessments", headers=bearer(sub="clinician-8"),
                json={"instrument": "PHQ-9", "administered_on": "2026-01-05", "total": 18})
    api.record(episode_id, "2026-01-26", 8)

    trail = api.get(f"/episodes/{episode_id}/audit")

    items = trail["items"]
    assert [e["type"] for e in items] == ["Opened", "AssessmentRecorded", "AssessmentRecorded",
                                          "ResponseReached"]
    assert [e["version"] for e in items] == [1, 2, 3, 4]
    # recorded_by is the token's sub (the default test token's is dr-test)
    assert [e["recorded_by"] for e in items] == ["clinician-7", "clinician-8", SUB, SUB]
    assert [e["clinical_date"] for e in items[1:]] == ["2026-01-05", "2026-01-26", "2026-01-26"]
    positions = [e["position"] for e in items]
    assert positions == sorted(positions)
    assert items[1]["data"]["reported_total"] == 18
    assert trail["next"] is None


def test_episode_audit_pages(api, client):
    episode_id = api.open()
    api.record_all(episode_id, V1[:4])  # 1 + 4 + 1 events

    first = api.get(f"/episodes/{episode_id}/audit", limit=4)
    second = client.get(first["next"]).json()

    assert [e["version"] for e in first["items"] + second["items"]] == [1, 2, 3, 4, 5, 6]
    assert second["next"] is None


def test_audit_across_episodes_filters_by_clinic_user_and_time(api, client):
    north = api.open(clinic_id="clinic-north")
    start = _between_writes()
    south = client.post("/episodes", headers=bearer(sub="nurse-1"),
                        json={"patient_ref": "pseudo-9", "clinic_id": "clinic-south"})
    south_id = south.json()["episode_id"]
    middle = _between_writes()
    api.record(north, "2026-01-05", 12)

    by_clinic = api.get("/audit", clinic_id="clinic-south")["items"]
    by_user = api.get("/audit", recorded_by="nurse-1")["items"]
    window = api.get("/audit", since=start.isoformat(), until=middle.isoformat())["items"]
    since = api.get("/audit", since=middle.isoformat())["items"]

    assert [(e["episode_id"], e["type"]) for e in by_clinic] == [(south_id, "Opened")]
    assert [e["episode_id"] for e in by_user] == [south_id]
    assert [e["episode_id"] for e in window] == [south_id]
    assert [(e["episode_id"], e["type"]) for e in since] == [(north, "AssessmentRecorded")]
    assert all(e["clinic_id"] == "clinic-south" for e in by_clinic)


def test_audit_across_episodes_pages(api, client):
    for n in range(3):
        api.open(clinic_id="clinic-audit", patient_ref=f"pseudo-{n}")

    first = api.get("/audit", clinic_id="clinic-audit", limit=2)
    second = client.get(first["next"]).json()

    positions = [e["position"] for e in first["items"] + second["items"]]
    assert len(positions) == len(set(positions)) == 3
    assert second["next"] is None


# -- GET /clinics/{id}/outcomes, /criteria, /health -----------------------------------------------

def test_clinic_outcomes_for_a_small_cohort(api):
    for criteria_rows in (V1, V2, V6, V8):
        episode_id = api.open(clinic_id="clinic-cohort")
        api.record_all(episode_id, criteria_rows)
    api.open(clinic_id="clinic-other")

    figures = api.get("/clinics/clinic-cohort/outcomes")

    # V1: response 01-26, full remission 03-02, recovery; V2: response 02-02; V6: response 02-02,
    # full remission 03-16, relapse; V8: baseline below threshold, not evaluable.
    assert (figures["episodes"], figures["evaluable"], figures["below_threshold"],
            figures["closed"]) == (4, 3, 1, 0)
    assert figures["counts"] == {"response": 3, "partial_remission": 0, "remission": 2,
                                 "recovery": 1, "relapse": 1, "recurrence": 0}
    assert figures["rates"] == {"response": 100.0, "partial_remission": 0.0, "remission": 66.7,
                                "recovery": 33.3, "relapse": 33.3, "recurrence": 0.0}
    assert figures["median_days_to_response"] == 28  # 21, 28, 28
    assert figures["median_days_to_remission"] == 63  # 56 (V1), 70 (V6)


def test_criteria_lists_the_builtin_sets(api):
    page = api.get("/criteria")

    ids = {c["id"] for c in page["items"]}
    assert {"frank1991", "frank1991-rec26w", "acnp2006", "acnp2006-symptom",
            "nhs-talking-therapies-2024", "cms159"} <= ids
    for criteria in page["items"]:
        assert {"id", "version", "hash", "kind", "title", "source", "params"} <= criteria.keys()
        assert len(criteria["hash"]) == 64
    assert page["next"] is None


@pytest.mark.file_store  # /health reports the store in use
def test_health_shows_the_store_and_no_lag_after_writes(api, store):
    episode_id = api.open()
    api.record_all(episode_id, V1[:4])

    health = api.get("/health")
    deadline = time.monotonic() + 30  # the background catch-up (every 1 s); more under load
    while any(p["lag"] for p in health["projections"].values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        health = api.get("/health")

    assert health["status"] == "ok"
    assert health["store"] == ("postgres" if store == "postgres" else "sqlite")
    assert health["position"] == 6
    assert set(health["projections"]) == {"episodes", "stages", "audit", "cohort", "fold-inputs",
                                          "caseload"}
    for projection in health["projections"].values():
        assert projection == {"position": 6, "lag": 0, "state": "ok", "reason": None}
