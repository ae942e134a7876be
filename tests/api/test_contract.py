"""The OpenAPI document tells the truth: problem+json errors with their schema, the idempotent
200, the ETag and Location headers, business rules the schema can state; 405 carries Allow;
``as_of`` is an ISO 8601 date-time, never a number; unknown stages are named as such."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import PROBLEM_TYPE

from api.deps import IF_MATCH
from domain.instruments import INSTRUMENTS
from domain.stages import STAGES

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Every write route and the errors it can answer.
WRITES = [
    ("post", "/episodes", (422,)),
    ("post", "/episodes/{episode_id}/assessments", (404, 409, 422)),
    ("post", "/episodes/{episode_id}/assessments/{assessment_id}/void", (404, 409, 422)),
    ("post", "/episodes/{episode_id}/close", (404, 409, 422)),
    ("post", "/episodes/{episode_id}/criteria", (404, 409, 422)),
    ("post", "/clinics/{clinic_id}/criteria", (422,)),
    ("post", "/criteria", (422,)),
    ("post", "/rescorings", (422,)),
]


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


@pytest.mark.parametrize(("method", "path", "statuses"), WRITES)
def test_write_routes_declare_their_errors_as_problem_json(document, method, path, statuses):
    responses = document["paths"][path][method]["responses"]
    for status in statuses:
        assert responses[str(status)]["content"] == {PROBLEM_TYPE: {"schema": PROBLEM_REF}}


def test_the_audit_proof_is_documented_with_its_problems(document):
    proof = document["paths"]["/audit/proof"]["get"]
    assert {p["name"]: p["required"] for p in proof["parameters"]} == {
        "position": True, "store": False}
    for status in ("404", "409", "422"):
        assert proof["responses"][status]["content"] == {PROBLEM_TYPE: {"schema": PROBLEM_REF}}
    schema = document["components"]["schemas"]["AuditProof"]
    assert set(schema["required"]) == {"store", "position", "leaf_index", "event_hash",
                                       "leaf_hash", "tree_size", "root", "proof", "checkpoint"}


def test_no_operation_refers_to_fastapi_default_validation_error(document):
    assert "HTTPValidationError" not in json.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]
    for _, _, op in operations(document):
        if "422" in op["responses"]:
            assert op["responses"]["422"]["content"] == {PROBLEM_TYPE: {"schema": PROBLEM_REF}}


def test_the_problem_schema_is_rfc_9457_with_code_field_and_errors(document):
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert {"field", "errors"} <= problem["properties"].keys()
    assert (problem["properties"]["status"]["minimum"],
            problem["properties"]["status"]["maximum"]) == (400, 599)


def test_every_operation_has_a_response_schema(document):
    for method, path, op in operations(document):
        success = [code for code in op["responses"] if code.startswith("2")]
        assert success, (method, path)
        for code in success:  # the 200 of an idempotent create included
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema["$ref"].startswith("#/components/schemas/"), (method, path, code)


def test_the_idempotent_200_and_the_headers_are_declared(document):
    opened = document["paths"]["/episodes"]["post"]["responses"]
    assert {"ETag", "Location"} <= opened["201"]["headers"].keys()
    recorded = document["paths"]["/episodes/{episode_id}/assessments"]["post"]["responses"]
    assert {"200", "201"} <= recorded.keys()
    assert "ETag" in recorded["200"]["headers"] and "ETag" in recorded["201"]["headers"]
    assert "replayed" in recorded["200"]["description"]
    assert recorded["200"]["content"] == recorded["201"]["content"]
    summary = document["paths"]["/episodes/{episode_id}"]["get"]["responses"]
    assert "ETag" in summary["200"]["headers"]
    for path in ("/episodes/{episode_id}/close",
                 "/episodes/{episode_id}/assessments/{assessment_id}/void"):
        assert "ETag" in document["paths"][path]["post"]["responses"]["200"]["headers"]
    assert "Location" in document["paths"]["/rescorings"]["post"]["responses"]["202"]["headers"]
    assert document["paths"]["/episodes"]["post"]["responses"]["201"]["headers"]["ETag"][
        "schema"]["pattern"] == '^"[0-9]+"$'


def test_business_rules_the_schema_can_state(document):
    schemas = document["components"]["schemas"]
    (stage,) = [p for p in document["paths"]["/episodes"]["get"]["parameters"]
                if p["name"] == "stage"]
    assert stage["schema"]["enum"] == list(STAGES)
    assert schemas["EpisodeSummary"]["properties"]["stage"]["enum"] == list(STAGES)
    assert schemas["RecordAssessment"]["properties"]["instrument"]["enum"] == list(INSTRUMENTS)
    assert schemas["CriteriaRef"]["properties"]["hash"]["pattern"] == "^[0-9a-f]{64}$"
    assert schemas["RecordAssessment"]["properties"]["assessment_id"]["anyOf"][0]["pattern"]
    limit = next(p for p in document["paths"]["/episodes"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)
    headers = {p["name"]: p for p in
               document["paths"]["/episodes/{episode_id}/assessments"]["post"]["parameters"]
               if p["in"] == "header"}
    assert "X-User-Id" not in headers  # the acting user is the token's sub
    assert headers["If-Match"]["schema"]["pattern"] == IF_MATCH.pattern
    (as_of,) = [p for p in document["paths"]["/episodes/{episode_id}/stages"]["get"]["parameters"]
                if p["name"] == "as_of"]
    assert as_of["schema"]["format"] == "date-time"


def test_405_carries_allow(api, client):
    episode_id = api.open()
    response = client.delete(f"/episodes/{episode_id}")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM_TYPE)
    assert response.headers["allow"] == "GET"
    response = client.put("/episodes")
    assert response.status_code == 405
    assert sorted(response.headers["allow"].split(", ")) == ["GET", "POST"]


@pytest.mark.parametrize("value", ["0.5", "1767225600", "2026-03-01", "2026-03-01T12:00:00"])
def test_as_of_must_be_an_iso_datetime_with_offset(api, client, value):
    episode_id = api.open()
    response = client.get(f"/episodes/{episode_id}/stages", params={"as_of": value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_TYPE)
    assert value not in response.json()["detail"]  # the value is never quoted back


@pytest.mark.parametrize("url", ["/audit?since=0.5", "/audit?until=1767225600"])
def test_audit_bounds_must_be_iso_datetimes(client, url):
    assert client.get(url).status_code == 422


# The document says `format: date-time` (RFC 3339 §5.6); what Python's fromisoformat reads
# besides (a space for T, basic format, no seconds, +0000, week dates) is refused, and RFC 3339's
# lower-case t and z are read (what schemathesis' negative_data_rejection checks; its seeded runs
# never generated these strings, so they are pinned here).
@pytest.mark.parametrize(("value", "status"), [
    ("2026-03-01 12:00:00+00:00", 422), ("20260301T120000+0000", 422),
    ("2026-03-01T12:00+00:00", 422), ("2026-03-01T12:00:00+0000", 422),
    ("2026-W09-1T12:00:00+00:00", 422), ("2026-03-01T12:00:00z", 200),
    ("2026-03-01t12:00:00Z", 200), ("2026-03-01T12:00:00.1234567+00:00", 200)])
def test_date_times_are_rfc3339_as_the_document_says(client, value, status):
    response = client.get("/audit", params={"since": value})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["items"] == []


def test_a_rescoring_as_of_number_is_refused(client):
    response = client.post("/rescorings", json={"criteria": "frank1991", "as_of": 0.5})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "as_of"]


@pytest.mark.parametrize(("value", "echoed"), [
    ("2100-01-01T00:00:00+02:00", "2100-01-01T00:00:00+02:00"),
    ("2100-01-01T00:00:00Z", "2100-01-01T00:00:00+00:00"),  # the README's `date -u ...Z`
    ("2100-01-01T00:00:00.250-05:00", "2100-01-01T00:00:00.250000-05:00")])
def test_as_of_with_an_offset_is_still_answered(api, client, value, echoed):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18)
    response = client.get(f"/episodes/{episode_id}/stages", params={"as_of": value})
    assert response.status_code == 200
    assert response.json()["as_of"] == echoed


def test_an_unknown_stage_is_422_naming_the_valid_stages(client):
    response = client.get("/episodes", params={"stage": "remitted"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["query", "stage"]
    for stage in STAGES:
        assert stage in problem["detail"]


def test_a_known_stage_still_filters(api, client):
    api.open()
    assert client.get("/episodes", params={"stage": "episode"}).json()["items"]
    assert client.get("/episodes", params={"stage": "remission"}).json()["items"] == []


def test_every_operation_declares_the_limits_and_the_host_check(document):
    # a request to any route may be refused by the Host check or the limits (api.limits)
    for method, path, op in operations(document):
        for status in ("400", "408", "413", "429"):
            content = op["responses"][status]["content"]
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem"), (
                method, path, status)
