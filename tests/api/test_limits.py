"""Bounded resources and misconfiguration at the application (OWASP API Security Top 10 2023:
API4 unrestricted resource consumption, API8 security misconfiguration): bodies over
``OUTCOMES_MAX_BODY_BYTES`` are 413, requests over ``OUTCOMES_RATE_LIMIT`` 429 with
``Retry-After``, a foreign ``Host`` 400, all problem+json; no CORS, no stack traces.

The server-level limits (header timeout, 431, 4 x 100 MB uploads) are tested against a real
process in tests/cli/test_serve_limits.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import pytest
from api_helpers import PROBLEM_TYPE, Api, memory_settings, running
from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient

from api import problems
from api.identity import Principal
from api.limits import RateLimiter, rate_limited
from bootstrap import Settings

LIMIT = 1024  # OUTCOMES_MAX_BODY_BYTES of these tests


@pytest.fixture
def settings() -> Settings:
    return memory_settings(max_body_bytes=LIMIT)


def _opening(size: int) -> bytes:
    """A valid POST /episodes body of exactly ``size`` bytes, padded with spaces (JSON
    whitespace)."""
    body = b'{"patient_ref": "P-1", "clinic_id": "clinic-a", "opened_on": "2026-01-05"}'
    return body + b" " * (size - len(body))


def _assert_problem(response: object, status: int, code: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM_TYPE  # type: ignore[attr-defined]
    assert response.json()["code"] == code  # type: ignore[attr-defined]


def test_a_body_at_the_limit_is_read(api: Api) -> None:
    response = api.client.post("/episodes", content=_opening(LIMIT),
                               headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


def test_a_content_length_over_the_limit_is_413_and_changes_nothing(api: Api) -> None:
    before = api.position()
    response = api.client.post("/episodes", content=_opening(LIMIT + 1),
                               headers={"content-type": "application/json"})
    _assert_problem(response, 413, "body-too-large")
    assert response.headers["connection"] == "close"
    assert "OUTCOMES_MAX_BODY_BYTES" in response.json()["detail"]
    assert api.position() == before


def test_a_streamed_body_is_counted_and_stopped_at_the_limit(api: Api) -> None:
    """(The in-process test client reads the whole generator first; that the server stops
    reading is measured against a real process in tests/cli/test_serve_limits.py.)"""
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        body = _opening(10 * LIMIT)
        for start in range(0, len(body), 256):
            yield body[start:start + 256]

    before = api.position()
    response = api.client.post("/episodes", content=chunks(),
                               headers={"content-type": "application/json"})
    _assert_problem(response, 413, "body-too-large")
    assert api.position() == before


@pytest.fixture
def limited() -> Iterator[TestClient]:
    with running(memory_settings(rate_limit="3/second")) as client:
        yield client


def test_the_fourth_request_in_a_second_is_429_with_retry_after(limited: TestClient) -> None:
    statuses = [limited.get("/health").status_code for _ in range(4)]
    refused = limited.get("/health")
    assert statuses == [200, 200, 200, 429]
    _assert_problem(refused, 429, "rate-limited")
    assert int(refused.headers["retry-after"]) >= 1
    time.sleep(int(refused.headers["retry-after"]))
    assert limited.get("/health").status_code == 200


def test_another_client_address_is_not_limited() -> None:
    # per minute: on a loaded machine the five requests may straddle a one-second window
    with running(memory_settings(rate_limit="3/minute")) as limited:
        for _ in range(4):
            limited.get("/health")
        other = TestClient(limited.app, client=("192.0.2.7", 50000))
        assert limited.get("/health").status_code == 429
        assert other.get("/health").status_code == 200


def test_the_limit_counts_per_principal_once_authentication_has_run() -> None:
    """The contract with authentication: a dependency that stores a ``Principal`` on
    ``request.state.principal`` before ``rate_limited`` makes the token's ``sub`` the identity,
    whatever address the requests come from."""
    def authenticated(request: Request, sub: Annotated[str, Header(alias="X-Test-Sub")]) -> None:
        request.state.principal = Principal(sub, frozenset(), frozenset())

    app = FastAPI()
    problems.install(app)
    app.state.rate_limiter = RateLimiter("3/second")
    app.get("/x", dependencies=[Depends(authenticated), Depends(rate_limited)])(lambda: {})
    client = TestClient(app)
    lee = [client.get("/x", headers={"X-Test-Sub": "dr-lee"}).status_code for _ in range(4)]
    kim = client.get("/x", headers={"X-Test-Sub": "dr-kim"}).status_code
    assert (lee, kim) == ([200, 200, 200, 429], 200)


def test_the_rate_limit_notation_is_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit="plenty")
    assert Settings(rate_limit="off").rate_limit == "off"


@pytest.mark.parametrize("host", ["rebound.example", "evil.localhost.example", "127.0.0.2:8000"])
def test_a_host_not_allowed_is_400_problem(host: str) -> None:
    with running(memory_settings(allowed_hosts="127.0.0.1,localhost")) as client:
        response = client.get("/health", headers={"host": host})
        allowed = client.get("/health", headers={"host": "localhost:8000"})
    _assert_problem(response, 400, "host-not-allowed")
    assert allowed.status_code == 200


def test_the_default_hosts_are_loopback_and_the_configured_host_never_testserver() -> None:
    assert Settings().allowed_host_names() == ["127.0.0.1", "localhost", "[::1]"]
    assert Settings(host="10.1.2.3").allowed_host_names() == \
        ["127.0.0.1", "localhost", "[::1]", "10.1.2.3"]
    assert Settings(host="::1").allowed_host_names() == ["127.0.0.1", "localhost", "[::1]"]
    assert Settings(allowed_hosts=" outcomes.clinic.example , localhost").allowed_host_names() \
        == ["outcomes.clinic.example", "localhost"]


def test_by_default_the_test_client_host_is_refused() -> None:
    with running(memory_settings(allowed_hosts=None)) as client:
        _assert_problem(client.get("/health"), 400, "host-not-allowed")


def test_cors_is_off_by_default(api: Api) -> None:
    origin = {"Origin": "https://attacker.example"}
    simple = api.client.get("/health", headers=origin)
    preflight = api.client.options("/episodes", headers={
        **origin, "Access-Control-Request-Method": "POST"})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


def test_an_internal_error_is_a_generic_problem_without_a_trace(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    view = api.client.app.state.services.read_models.views["episodes"]  # type: ignore[attr-defined]

    def broken(**_: object) -> None:
        raise RuntimeError("boom at PATIENT-secret in /work/projections/episodes.py")

    monkeypatch.setattr(view, "find", broken)
    response = api.client.get("/episodes")
    _assert_problem(response, 500, "internal-error")
    assert response.json()["detail"] == "an unexpected error occurred; it has been logged"
    for leak in ("Traceback", "RuntimeError", "PATIENT-secret", "episodes.py"):
        assert leak not in response.text
