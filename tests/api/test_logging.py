"""Logs: JSON lines whose keys are all in ``bootstrap.LOG_KEYS``, never personal data or request
bodies; one summary line per request with its request id, route template and status."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from api_helpers import PATIENT_REF, V1, fixed_clock, memory_settings
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from local_issuer import bearer

from api import create_app
from bootstrap import LOG_KEYS, build

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
VOID_REASON = "wrong patient: Jane Doe, born 1970-05-04"
CLINIC = "clinic-logging-7"


class Logged:
    """A client whose app's log lines (rendered as configured: JSON) land in ``stream``."""

    def __init__(self, client: TestClient, stream: io.StringIO) -> None:
        self.client, self.stream = client, stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()

    def summary(self, request_id: str) -> dict[str, Any]:
        [line] = [e for e in self.lines() if e["event"] == "request"
                  and e["request_id"] == request_id]
        return line


@pytest.fixture
def logged() -> Iterator[Logged]:
    settings = memory_settings(log_format="json")
    services = build(settings, clock=fixed_clock)
    app = create_app(settings, services=services)  # configures structlog: JSON to stderr
    saved = structlog.get_config()
    stream = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    try:
        with TestClient(app, headers=bearer(sub="clinician-42")) as client:
            yield Logged(client, stream)
    finally:
        structlog.configure(**saved)
        services.close()


def _full_scenario(client: TestClient) -> list[str]:
    """Every route, successes and failures, as a clinician would; returns the body values."""
    user: dict[str, str] = {}  # the client's token names clinician-42
    opened = client.post("/episodes", headers=user, json={
        "patient_ref": PATIENT_REF, "clinic_id": CLINIC, "criteria": "acnp2006",
        "opened_on": "2026-01-02"})
    episode_id = opened.json()["episode_id"]
    assessments = f"/episodes/{episode_id}/assessments"
    client.post(assessments, headers=user, json={
        "assessment_id": "assess-logging-1", "instrument": "PHQ-9",
        "administered_on": "2026-01-05T09:30:00+01:00", "items": [3, 3, 2, 2, 2, 2, 2, 1, 1]})
    for day, total in V1[1:6]:
        client.post(assessments, headers=user,
                    json={"instrument": "PHQ-9", "administered_on": day, "total": total})
    client.post(f"{assessments}/assess-logging-1/void", headers=user, json={"reason": VOID_REASON})
    client.post(assessments, json={"instrument": "PHQ-9", "administered_on": "2026-02-30",
                                   "total": 7, "note": PATIENT_REF})  # 422
    client.post(assessments, json={"instrument": "PHQ-9", "administered_on": "2026-01-12",
                                   "total": 99})  # 422
    client.post("/episodes", json={"patient_ref": PATIENT_REF, "clinic_id": CLINIC,
                                   "criteria": "unknown-criteria-77"})  # 422
    client.post(assessments, headers={"If-Match": '"1"'},
                json={"instrument": "PHQ-9", "administered_on": "2026-03-01", "total": 4})  # 409
    client.post(f"{assessments}/assess-logging-404/void", json={"reason": VOID_REASON})  # 404
    client.get(f"/episodes?patient_ref={PATIENT_REF}&clinic_id={CLINIC}")
    client.get(f"/episodes/{episode_id}")
    client.get(f"/episodes/{episode_id}/stages?include_retracted=true"
               f"&as_of=2100-01-01T00:00:00%2B00:00")
    client.get(f"/episodes/{episode_id}/audit")
    client.get(f"/audit?clinic_id={CLINIC}&recorded_by=clinician-42")
    client.get(f"/clinics/{CLINIC}/outcomes")
    client.get("/criteria")
    client.get("/health")
    client.post(f"/episodes/{episode_id}/close", headers=user, json={"discharged_on": "2026-03-01"})
    client.post(f"/episodes/{episode_id}/close", json={"discharged_on": "2026-03-02"})  # 409
    client.get("/episodes/not-an-episode")  # 404
    return [PATIENT_REF, VOID_REASON, "assess-logging-1", "assess-logging-404",
            "2026-01-05T09:30:00+01:00", "2026-02-30", "unknown-criteria-77", "Jane Doe"]


def test_every_logged_key_is_allowed_and_no_body_value_is_logged(logged):
    body_values = _full_scenario(logged.client)

    lines = logged.lines()
    assert len(lines) >= 20
    for line in lines:
        assert set(line) <= LOG_KEYS, set(line) - LOG_KEYS
    text = logged.text()
    for value in body_values:
        assert value not in text
    assert {line["status"] for line in lines if line["event"] == "request"} >= {
        200, 201, 404, 409, 422}


def test_a_given_request_id_is_echoed_and_logged(logged):
    response = logged.client.get("/health", headers={"X-Request-ID": "req-2026.abc_XYZ"})

    assert response.headers["X-Request-ID"] == "req-2026.abc_XYZ"
    assert logged.summary("req-2026.abc_XYZ")["route"] == "/health"


@pytest.mark.parametrize("given", ["has spaces", "x" * 65, "<script>", "ünïcode", ""])
def test_a_malformed_request_id_is_replaced_by_a_generated_one(logged, given):
    response = logged.client.get("/criteria", headers={"X-Request-ID": given.encode()})

    generated = response.headers["X-Request-ID"]
    assert generated != given
    assert GENERATED_ID.match(generated)
    assert logged.summary(generated)["status"] == 200
    if given:
        assert given not in logged.text()


def test_each_request_gets_its_own_generated_id(logged):
    first = logged.client.get("/criteria").headers["X-Request-ID"]
    second = logged.client.get("/criteria").headers["X-Request-ID"]

    assert GENERATED_ID.match(first) and GENERATED_ID.match(second)
    assert first != second


def test_the_summary_line_carries_the_route_template_never_the_raw_path(logged):
    client = logged.client
    episode_id = client.post("/episodes", json={"patient_ref": PATIENT_REF,
                                                "clinic_id": CLINIC}).json()["episode_id"]

    response = client.post(f"/episodes/{episode_id}/assessments",
                           headers={"X-Request-ID": "req-summary-1"},
                           json={"instrument": "PHQ-9", "administered_on": "2026-01-05",
                                 "total": 18})

    assert response.status_code == 201
    line = logged.summary("req-summary-1")
    assert line["route"] == "/episodes/{episode_id}/assessments"
    assert (line["method"], line["status"]) == ("POST", 201)
    assert isinstance(line["duration_ms"], float | int)
    assert all(episode_id not in str(e.get("route")) for e in logged.lines())
    # a query string is never logged: here it names the patient
    listed = client.get("/episodes", params={"patient_ref": PATIENT_REF},
                        headers={"X-Request-ID": "req-summary-2"})
    assert listed.status_code == 200
    assert logged.summary("req-summary-2")["route"] == "/episodes"
    assert PATIENT_REF not in logged.text()


def test_problem_responses_are_logged_with_their_status(logged):
    client = logged.client

    client.get("/episodes/not-an-episode", headers={"X-Request-ID": "req-404"})
    client.get("/no/such/route", headers={"X-Request-ID": "req-unmatched"})
    client.get("/episodes?limit=0", headers={"X-Request-ID": "req-422"})

    assert (logged.summary("req-404")["route"], logged.summary("req-404")["status"]) == (
        "/episodes/{episode_id}", 404)
    assert logged.summary("req-unmatched")["status"] == 404
    assert "/no/such/route" not in logged.text()
    assert (logged.summary("req-422")["route"], logged.summary("req-422")["status"]) == (
        "/episodes", 422)


def test_log_lines_are_json_with_utc_timestamps_and_levels(logged):
    logged.client.get("/health")

    for line in logged.lines():
        assert line["level"] in ("debug", "info", "warning", "error", "critical")
        assert line["timestamp"].endswith("Z")


def test_the_summary_line_names_the_episode_and_the_user(logged):
    opened = logged.client.post("/episodes", json={
        "patient_ref": PATIENT_REF, "clinic_id": CLINIC, "opened_on": "2026-01-02"})
    episode_id = opened.json()["episode_id"]
    response = logged.client.post(f"/episodes/{episode_id}/assessments",
                                  json={"instrument": "PHQ-9", "administered_on": "2026-01-05",
                                        "total": 12})
    line = logged.summary(response.headers["X-Request-ID"])
    assert line["episode_id"] == episode_id
    assert line["user_id"] == "clinician-42"
    assert line["route"] == "/episodes/{episode_id}/assessments"


def test_an_unexpected_error_is_a_problem_with_a_summary_line_and_no_message(logged, monkeypatch):
    services = logged.client.app.state.services

    def broken(*args, **kwargs):
        raise RuntimeError(f"leaked {PATIENT_REF}")

    monkeypatch.setattr(services.app, "open_episode", broken)
    response = logged.client.post("/episodes", json={"patient_ref": PATIENT_REF,
                                                     "clinic_id": CLINIC})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal-error"
    line = logged.summary(response.headers["X-Request-ID"])
    assert line["status"] == 500
    errors = [e for e in logged.lines() if e["event"] == "unhandled error"]
    assert [e["error_type"] for e in errors] == ["RuntimeError"]
    assert PATIENT_REF not in logged.text()


def _streamed(*, broken: bool) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        if broken:
            raise RuntimeError(f"leaked {PATIENT_REF}")
        yield b"second"
    return StreamingResponse(chunks(), media_type="text/plain")


def test_a_streamed_answer_passes_whole_with_its_request_id_and_one_summary_line(logged):
    logged.client.app.add_api_route("/test-streamed", lambda: _streamed(broken=False))

    response = logged.client.get("/test-streamed", headers={"X-Request-ID": "req-stream-1"})

    assert response.status_code == 200
    assert response.content == b"first,second"
    assert response.headers["X-Request-ID"] == "req-stream-1"
    line = logged.summary("req-stream-1")
    assert (line["route"], line["status"], line["method"]) == ("/test-streamed", 200, "GET")


def test_an_error_after_the_answer_started_propagates_without_a_second_answer(logged):
    logged.client.app.add_api_route("/test-broken-stream", lambda: _streamed(broken=True))

    with pytest.raises(RuntimeError):
        logged.client.get("/test-broken-stream", headers={"X-Request-ID": "req-stream-2"})

    assert logged.summary("req-stream-2")["status"] == 200  # the start that was sent, once
    assert not [e for e in logged.lines() if e["event"] == "unhandled error"]
    assert PATIENT_REF not in logged.text()
