"""Function-level authorisation (OWASP API5:2023), BOLA (API1:2023) and property-level
authorisation (API3:2023): each role against each route (table-driven), clinics only from the
token, another clinic's episode or run answering exactly like a missing one, and no body field
that sets ``recorded_by`` or moves an episode to another clinic."""

from __future__ import annotations

import time
from typing import Any

import pytest
from api_helpers import V1, Api
from fastapi.testclient import TestClient
from local_issuer import bearer

from api.identity import ROLES

CLINIC, OTHER = "clinic-a", "clinic-b"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def world(api: Api, client: TestClient) -> dict[str, str]:
    """An episode in clinic-a (V1 recorded) and one in clinic-b, a finished run of each clinic."""
    ids = {"episode": api.open(clinic_id=CLINIC), "other": api.open(clinic_id=OTHER)}
    api.record_all(ids["episode"], V1[:4])
    api.record_all(ids["other"], V1[:4])
    for key, clinic in (("run", CLINIC), ("other_run", OTHER)):
        started = client.post("/rescorings", json={"criteria": "acnp2006", "clinic_id": clinic})
        assert started.status_code == 202, started.text
        ids[key] = started.json()["run_id"]
        for _ in range(200):
            if client.get(f"/rescorings/{ids[key]}").json()["status"] == "completed":
                break
            time.sleep(0.02)
    return ids


# (method, path, body, the roles allowed). {episode} and {run} are clinic-a's.
ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("POST", "/episodes", {"patient_ref": "p-9", "clinic_id": CLINIC}, {"clinician"}),
    ("GET", "/episodes", None, {"clinician", "auditor"}),
    ("GET", "/episodes/{episode}", None, {"clinician", "auditor"}),
    ("GET", "/episodes/{episode}/assessments", None, {"clinician", "auditor"}),
    ("POST", "/episodes/{episode}/assessments",
     {"instrument": "PHQ-9", "administered_on": "2026-02-02", "total": 6}, {"clinician"}),
    ("POST", "/episodes/{episode}/assessments/nope/void", {"reason": "r"}, {"clinician"}),
    ("POST", "/episodes/{episode}/close", {"discharged_on": "2026-03-01"}, {"clinician"}),
    ("GET", "/episodes/{episode}/stages", None, {"clinician", "auditor"}),
    ("GET", "/episodes/{episode}/alerts", None, {"clinician", "auditor"}),
    ("POST", "/episodes/{episode}/alerts/nope/acknowledge", {"action": "other"}, {"clinician"}),
    ("POST", "/episodes/{episode}/alerts/nope/resolve", {"reason": "r"}, {"clinician"}),
    ("POST", "/episodes/{episode}/support-reviews",
     {name: {"rating": 3} for name in ("alliance", "motivation", "social_support",
                                       "life_events")}, {"clinician"}),
    ("GET", "/episodes/{episode}/audit", None, {"auditor"}),
    ("GET", "/audit", None, {"auditor"}),
    ("GET", "/audit/proof?position=1", None, {"auditor"}),
    ("GET", "/clinics/clinic-a/outcomes", None, {"researcher"}),
    ("POST", "/rescorings", {"criteria": "frank1991", "clinic_id": CLINIC}, {"researcher"}),
    ("GET", "/rescorings/{run}", None, {"researcher"}),
    ("GET", "/rescorings/{run}/changes", None, {"researcher"}),
    ("GET", "/rescorings/{run}/episodes/{episode}", None, {"researcher"}),
    ("POST", "/episodes/{episode}/criteria", {"criteria": "frank1991", "reason": "r"}, {"admin"}),
    ("POST", "/clinics/clinic-a/criteria", {"criteria": "frank1991", "reason": "r"}, {"admin"}),
    ("POST", "/criteria", {"base": "frank1991", "id": "clinic-a-26w", "source": "policy",
                           "params": {"recovery_min_days_from_full_onset": 182}}, {"admin"}),
    ("GET", "/criteria", None, set(ROLES)),
    ("GET", "/criteria/acnp2006", None, set(ROLES)),
]
TABLE = [(method, path, body, role, role in allowed)
         for method, path, body, allowed in ROUTES for role in ROLES]


@pytest.mark.parametrize("method, path, body, role, allowed", TABLE,
                         ids=[f"{role}-{m}-{p}" for m, p, _, role, _ in TABLE])
def test_each_role_against_each_route(world, client, method, path, body, role, allowed):
    url = path.format(**world)
    response = client.request(method, url, json=body,
                              headers=bearer(roles=[role], clinics=[CLINIC]))
    if allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        problem = response.json()
        assert problem["code"] == "forbidden"
        needed = next(a for m, p, _, a in ROUTES if (m, p) == (method, path))
        assert problem["detail"].startswith(
            f"this needs the role {' or '.join(sorted(needed, key=ROLES.index))};")
        assert f"the token carries {role}" in problem["detail"]


def test_a_token_without_roles_is_forbidden_everywhere_but_the_criteria(world, client):
    headers = bearer(roles=[], clinics=[CLINIC])
    assert client.get("/episodes", headers=headers).json()["detail"] == (
        "this needs the role clinician or auditor; the token carries none")
    assert client.get("/criteria", headers=headers).status_code == 200


# -- BOLA: clinic-b's resources to a caller of clinic-a --------------------------------------------

READS = ["/episodes/{id}", "/episodes/{id}/assessments", "/episodes/{id}/stages",
         "/episodes/{id}/audit"]
WRITES: list[tuple[str, dict[str, Any]]] = [
    ("/episodes/{id}/assessments", {"instrument": "PHQ-9", "administered_on": "2026-02-02",
                                    "total": 6}),
    ("/episodes/{id}/assessments/a-1/void", {"reason": "r"}),
    ("/episodes/{id}/close", {"discharged_on": "2026-03-01"}),
    ("/episodes/{id}/criteria", {"criteria": "frank1991", "reason": "r"}),
]
A_ONLY = bearer(clinics=[CLINIC])  # every role, clinic-a only


@pytest.mark.parametrize("path", READS)
def test_another_clinics_episode_reads_exactly_like_a_missing_one(world, client, path):
    other = client.get(path.format(id=world["other"]), headers=A_ONLY)
    missing = client.get(path.format(id=MISSING), headers=A_ONLY)
    assert other.status_code == missing.status_code == 404
    assert other.json() == {**missing.json(),
                            "detail": missing.json()["detail"].replace(MISSING, world["other"])}
    assert other.headers.keys() - {"x-request-id", "content-length"} == \
        missing.headers.keys() - {"x-request-id", "content-length"}
    # ... while the same caller reads its own clinic's episode
    assert client.get(path.format(id=world["episode"]), headers=A_ONLY).status_code == 200


@pytest.mark.parametrize("path, body", WRITES, ids=[p for p, _ in WRITES])
def test_another_clinics_episode_cannot_be_written_and_nothing_changes(world, client, path, body):
    position = client.get("/health").json()["position"]
    response = client.post(path.format(id=world["other"]), json=body, headers=A_ONLY)
    assert response.status_code == 404
    assert response.json()["detail"] == f"no episode {world['other']}"
    assert client.get("/health").json()["position"] == position


def test_lists_and_audit_queries_hold_only_the_callers_clinics(world, client):
    listed = client.get("/episodes", headers=A_ONLY).json()["items"]
    assert [e["episode_id"] for e in listed] == [world["episode"]]
    assert client.get("/episodes", params={"clinic_id": OTHER}, headers=A_ONLY).json() == {
        "items": [], "next": None}
    audit = client.get("/audit", headers=A_ONLY).json()["items"]
    assert audit and {e["clinic_id"] for e in audit} == {CLINIC}
    assert client.get("/audit", params={"clinic_id": OTHER},
                      headers=A_ONLY).json()["items"] == []
    # A token with no clinic sees nothing at all
    assert client.get("/episodes", headers=bearer(clinics=[])).json()["items"] == []


def test_cohort_figures_of_another_clinic_are_404_like_an_empty_one(world, client):
    other = client.get(f"/clinics/{OTHER}/outcomes", headers=A_ONLY)
    empty = client.get("/clinics/clinic-nobody/outcomes", headers=bearer(
        clinics=[CLINIC, "clinic-nobody"]))
    assert other.status_code == empty.status_code == 404
    assert other.json()["detail"] == f"no episodes at clinic {OTHER}"
    assert client.get(f"/clinics/{CLINIC}/outcomes", headers=A_ONLY).status_code == 200


@pytest.mark.parametrize("path", ["/rescorings/{run}", "/rescorings/{run}/changes",
                                  "/rescorings/{run}/episodes/{other}"])
def test_another_clinics_run_is_404_like_a_missing_one(world, client, path):
    response = client.get(path.format(run=world["other_run"], other=world["other"]),
                          headers=A_ONLY)
    assert response.status_code == 404
    assert response.json()["code"] in ("rescoring-not-found", "not-found")
    missing = client.get(path.format(run=MISSING, other=world["other"]), headers=A_ONLY)
    assert missing.status_code == 404 and missing.json()["code"] == response.json()["code"]


def test_a_run_of_another_clinic_cannot_be_started_and_one_needs_a_clinic(client):
    response = client.post("/rescorings", json={"criteria": "acnp2006", "clinic_id": OTHER},
                           headers=A_ONLY)
    assert (response.status_code, response.json()["field"]) == (403, "clinic_id")
    assert response.json()["detail"] == f"the token does not carry clinic {OTHER!r}"
    response = client.post("/rescorings", json={"criteria": "acnp2006"}, headers=A_ONLY)
    assert (response.status_code, response.json()["field"]) == (422, "clinic_id")


def test_opening_or_adopting_for_another_clinic_is_403_and_changes_nothing(world, client):
    position = client.get("/health").json()["position"]
    opened = client.post("/episodes", json={"patient_ref": "p", "clinic_id": OTHER},
                         headers=A_ONLY)
    assert (opened.status_code, opened.json()["detail"]) == (
        403, f"the token does not carry clinic {OTHER!r}")
    adopted = client.post(f"/clinics/{OTHER}/criteria", headers=A_ONLY,
                          json={"criteria": "frank1991", "reason": "r"})
    assert adopted.status_code == 403
    assert client.get("/health").json()["position"] == position


# -- property-level authorisation / mass assignment ------------------------------------------------

@pytest.mark.parametrize("field, value", [("recorded_by", "someone-else"),
                                          ("clinic_id", OTHER), ("episode_id", MISSING)])
def test_a_body_cannot_set_recorded_by_or_move_an_episode(world, client, field, value):
    position = client.get("/health").json()["position"]
    response = client.post(f"/episodes/{world['episode']}/assessments", headers=A_ONLY, json={
        "instrument": "PHQ-9", "administered_on": "2026-02-02", "total": 6, field: value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]
    assert client.get("/health").json()["position"] == position


def test_opening_cannot_set_recorded_by(client):
    response = client.post("/episodes", headers=A_ONLY, json={
        "patient_ref": "p", "clinic_id": CLINIC, "recorded_by": "someone-else"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "recorded_by"]
