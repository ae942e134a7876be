"""The OpenAPI document is valid OpenAPI 3.1, and real answers match what it declares: each body
validates against the schema for its status and media type, each declared header is sent."""

from __future__ import annotations

import json
import time
from typing import Any

from api_helpers import V1
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from api.deps import IF_MATCH


def test_the_document_is_valid_openapi(client):
    validate(client.get("/openapi.json").json())


class Checker:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.document = client.get("/openapi.json").json()
        self.checked: list[tuple[str, str, int]] = []

    def __call__(self, method: str, template: str, url: str, **kwargs: Any) -> Any:
        response = self.client.request(method, url, **kwargs)
        declared = self.document["paths"][template][method.lower()]["responses"]
        entry = declared[str(response.status_code)]  # the status itself is declared
        media = response.headers["content-type"].split(";")[0]
        schema = {**entry["content"][media]["schema"],
                  "components": self.document["components"]}
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(response.json())]
        assert errors == [], (method, url, response.status_code, errors[:3])
        for header in entry.get("headers", {}):
            assert header in response.headers, (method, url, header)
        self.checked.append((method, template, response.status_code))
        return response.json()


def test_real_answers_match_the_declared_schemas_and_headers(client):
    check = Checker(client)
    ep = check("POST", "/episodes", "/episodes",
               json={"patient_ref": "p-1", "clinic_id": "c-1", "criteria": "frank1991",
                     "opened_on": "2026-01-05"})["episode_id"]
    rec = "/episodes/{episode_id}/assessments"
    for i, (day, total) in enumerate(V1[:8]):
        check("POST", rec, f"/episodes/{ep}/assessments",
              json={"instrument": "PHQ-9", "administered_on": day, "total": total,
                    "assessment_id": f"a-{i}"})
    check("POST", rec, f"/episodes/{ep}/assessments",  # the idempotent 200
          json={"instrument": "PHQ-9", "administered_on": V1[0][0], "total": V1[0][1],
                "assessment_id": "a-0"})
    check("POST", "/episodes/{episode_id}/assessments/{assessment_id}/void",
          f"/episodes/{ep}/assessments/a-3/void", json={"reason": "typo"})
    check("GET", "/episodes/{episode_id}", f"/episodes/{ep}")
    check("GET", "/episodes", "/episodes?clinic_id=c-1")
    check("GET", rec, f"/episodes/{ep}/assessments")
    check("GET", "/episodes/{episode_id}/stages", f"/episodes/{ep}/stages?include_retracted=1")
    check("GET", "/episodes/{episode_id}/audit", f"/episodes/{ep}/audit")
    check("GET", "/audit", "/audit?clinic_id=c-1&limit=3")
    check("GET", "/clinics/{clinic_id}/outcomes", "/clinics/c-1/outcomes")
    caseload = check("GET", "/clinics/{clinic_id}/caseload", "/clinics/c-1/caseload?limit=1")
    check("GET", "/clinics/{clinic_id}/caseload", caseload["next"] or "/clinics/c-1/caseload")
    check("GET", "/clinics/{clinic_id}/caseload", "/clinics/c-1/caseload?kind=urgent")
    check("GET", "/health", "/health")
    check("GET", "/criteria", "/criteria")
    check("POST", "/criteria", "/criteria", json={
        "base": "frank1991", "id": "c-1-26w", "source": "policy",
        "params": {"recovery_min_days_from_full_onset": 182}})
    check("GET", "/criteria/{criteria_id}", "/criteria/c-1-26w")
    run = check("POST", "/rescorings", "/rescorings",
                json={"criteria": "acnp2006", "clinic_id": "c-1"})["run_id"]
    for _ in range(200):
        if check("GET", "/rescorings/{run_id}", f"/rescorings/{run}")["status"] == "completed":
            break
        time.sleep(0.02)
    check("GET", "/rescorings/{run_id}/changes", f"/rescorings/{run}/changes")
    check("GET", "/rescorings/{run_id}/episodes/{episode_id}", f"/rescorings/{run}/episodes/{ep}")
    check("POST", "/episodes/{episode_id}/criteria", f"/episodes/{ep}/criteria",
          json={"criteria": "acnp2006", "reason": "policy"})
    check("POST", "/clinics/{clinic_id}/criteria", "/clinics/c-1/criteria",
          json={"criteria": "frank1991", "reason": "policy"})
    nt = check("POST", "/episodes", "/episodes", json={
        "patient_ref": "p-2", "clinic_id": "c-2", "criteria": "nhs-talking-therapies-2024",
        "opened_on": "2026-01-05"})["episode_id"]
    for day, phq, gad in (("2026-01-05", 15, 12), ("2026-01-19", 9, 8), ("2026-02-02", 6, 5)):
        for instrument, total in (("PHQ-9", phq), ("GAD-7", gad)):
            check("POST", rec, f"/episodes/{nt}/assessments",
                  json={"instrument": instrument, "administered_on": day, "total": total})
    check("POST", "/episodes/{episode_id}/close", f"/episodes/{nt}/close",
          json={"discharged_on": "2026-02-02"})
    check("GET", "/episodes/{episode_id}", f"/episodes/{nt}")
    # Problems: 404, 409, 422 as declared
    check("GET", "/episodes/{episode_id}", "/episodes/not-an-episode")
    check("POST", rec, f"/episodes/{nt}/assessments",
          json={"instrument": "PHQ-9", "administered_on": "2026-02-03", "total": 3})
    check("POST", rec, f"/episodes/{ep}/assessments", json={"instrument": "PHQ-9"})
    check("GET", "/episodes/{episode_id}/stages", f"/episodes/{ep}/stages?as_of=0.5")
    assert {status for _, _, status in check.checked} == {200, 201, 202, 404, 409, 422}


def test_no_header_or_query_parameter_is_declared_nullable(client):
    # A header or query parameter is absent or a string: a `{"type": "null"}` branch (what FastAPI
    # writes for `str | None = None`) makes clients and schemathesis send the text "null", which
    # the app then refuses (If-Match: null answered 422 though the document allowed it).
    document = client.get("/openapi.json").json()
    nullable = [(method, path, parameter["name"])
                for path, operations in document["paths"].items()
                for method, operation in operations.items()
                for parameter in operation.get("parameters", [])
                if '"null"' in json.dumps(parameter["schema"])]
    assert nullable == []
    if_match = next(p for p in document["paths"]["/episodes/{episode_id}/close"]["post"]["parameters"]
                    if p["name"] == "If-Match")
    assert if_match["schema"] == {"type": "string", "pattern": IF_MATCH.pattern,
                                  "title": "If-Match", "description": if_match["description"]}
