"""Read-your-writes across processes (issue 10, ADR 0019): every write answers its store
position (``X-Ledger-Position`` and ``position``); a read sending ``X-Min-Position`` waits for the
one read model it reads, bounded, else 503 with Retry-After; a database that cannot be reached is
503 with Retry-After, never 500."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import psycopg
import pytest
from api_helpers import PROBLEM_TYPE, Api, memory_settings, running
from eventsourcing import persistence
from fastapi.testclient import TestClient


@pytest.fixture
def client() -> Iterator[TestClient]:
    with running(memory_settings(catch_up_interval=0, min_position_timeout=0.3)) as client:
        yield client


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    body = response.json()
    assert body["code"] == code
    return body


def test_every_write_answers_its_position_in_the_header_and_the_body(client: TestClient) -> None:
    api = Api(client)
    opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a",
                                            "opened_on": "2026-01-05"})
    assert opened.status_code == 201
    assert opened.headers["X-Ledger-Position"] == str(opened.json()["position"]) == "1"
    episode = opened.json()["episode_id"]
    body = {"instrument": "PHQ-9", "administered_on": "2026-01-05", "total": 18,
            "assessment_id": "a-1"}
    recorded = client.post(f"/episodes/{episode}/assessments", json=body)
    assert recorded.status_code == 201
    position = recorded.json()["position"]
    assert recorded.headers["X-Ledger-Position"] == str(position)
    assert position == api.get("/health")["position"] >= 2
    # A replay stores nothing: it answers the store's last position, which covers the first.
    replayed = client.post(f"/episodes/{episode}/assessments", json=body)
    assert replayed.status_code == 200
    assert replayed.json()["position"] == position
    assert replayed.headers["X-Ledger-Position"] == str(position)
    closed = client.post(f"/episodes/{episode}/close", json={"discharged_on": "2026-03-02"})
    assert closed.status_code == 200
    assert int(closed.headers["X-Ledger-Position"]) == closed.json()["position"] > position


def test_a_read_at_a_written_position_answers_that_write(client: TestClient) -> None:
    opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    episode, position = opened.json()["episode_id"], opened.headers["X-Ledger-Position"]
    read = client.get(f"/episodes/{episode}", headers={"X-Min-Position": position})
    assert read.status_code == 200
    assert read.json()["version"] == 1


@pytest.mark.parametrize("value", ["abc", "-1", "1.0", "1234567890123456789", " ", "0x10"])
def test_a_malformed_min_position_is_422(client: TestClient, value: str) -> None:
    opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    body = _problem(client.get(f"/episodes/{opened.json()['episode_id']}",
                               headers={"X-Min-Position": value}), 422, "invalid-input")
    assert body["field"] == "X-Min-Position"


def test_a_position_beyond_the_store_is_422_at_once(client: TestClient) -> None:
    client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    started = time.monotonic()
    body = _problem(client.get("/episodes", headers={"X-Min-Position": "99"}), 422,
                    "invalid-input")
    assert time.monotonic() - started < 0.3  # no wait for a position no write answered
    assert body["detail"] == "X-Min-Position: 99 is beyond the store's last position 1"


def test_a_read_model_that_does_not_reach_the_position_is_503_with_retry_after(
        client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    # The episodes read model stops following (a runner gone): the write is not in it.
    services.read_models.catch_up = lambda names=None, progress=None: 0
    opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    started = time.monotonic()
    response = client.get("/episodes", headers={"X-Min-Position": opened.headers[
        "X-Ledger-Position"]})
    waited = time.monotonic() - started
    body = _problem(response, 503, "read-model-behind")
    assert response.headers["Retry-After"] == "1"
    assert 0.3 <= waited < 2  # bounded by min_position_timeout
    assert body["detail"] == ("the episodes read model has not reached position 1 within "
                              "0.3 s; retry after 1 s")
    # Without the header the read answers what the read model has (nothing yet).
    assert client.get("/episodes").json()["items"] == []


def test_a_read_waits_only_for_the_read_model_it_reads(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    caught_up: list[list[str] | None] = []
    original = services.read_models.catch_up
    services.read_models.catch_up = lambda names=None, progress=None: (
        caught_up.append(names), original(names, progress))[1]
    opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    episode, position = opened.json()["episode_id"], opened.headers["X-Ledger-Position"]
    assert client.get(f"/episodes/{episode}/stages",
                      headers={"X-Min-Position": position}).status_code == 200
    assert caught_up == [["stages"]]
    status = services.read_models.status()
    assert status["stages"]["position"] == 1
    assert status["episodes"]["position"] == 0  # not waited for


@pytest.mark.parametrize("error", [
    persistence.OperationalError("connection refused"),
    persistence.InterfaceError("connection closed"),
    persistence.ConnectionUnavailableError("pool timeout"),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    sqlite3.OperationalError("database is locked"),
], ids=lambda e: type(e).__module__.split(".")[0] + "." + type(e).__name__)
def test_a_database_that_cannot_be_reached_is_503_with_retry_after_never_500(
        client: TestClient, error: Exception) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    def unreachable(**_: object) -> None:
        raise error
    services.app.open_episode = unreachable
    response = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    body = _problem(response, 503, "database-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert "connection" not in body["detail"]  # the driver's message is logged by type only


def test_an_access_log_that_cannot_be_reached_is_503_with_retry_after(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    def unreachable(_: object) -> None:
        raise persistence.OperationalError("connection refused")
    services.access_log.record = unreachable
    response = client.get("/health")
    body = _problem(response, 503, "access-log-unavailable")
    assert response.headers["Retry-After"] == "1"
    assert body["detail"] == "the access could not be recorded"


def test_health_is_degraded_naming_a_refused_read_model(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    status = services.read_models.status()
    refused = {**status, "audit": {"position": 5, "lag": -4, "state": "refused",
                                   "reason": "ahead of its event store (restored?)"}}
    services.read_models.status = lambda: refused
    health = client.get("/health")
    assert health.status_code == 200  # writes and the other reads go on (ADR 0019)
    assert health.json()["status"] == "degraded"
    assert health.json()["projections"]["audit"] == refused["audit"]
    assert health.json()["projections"]["episodes"]["state"] == "ok"


def test_the_document_declares_the_position_header_and_the_503(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    post = document["paths"]["/episodes"]["post"]
    assert "X-Ledger-Position" in post["responses"]["201"]["headers"]
    assert "503" in post["responses"]
    get = document["paths"]["/episodes/{episode_id}/stages"]["get"]
    header = next(p for p in get["parameters"] if p["name"] == "X-Min-Position")
    assert header["in"] == "header"
    assert header["schema"]["pattern"] == "^[0-9]{1,18}$"
    created = document["components"]["schemas"]["EpisodeCreated"]
    assert "position" in created["required"]


def test_a_refused_read_model_is_503_with_retry_after() -> None:
    # The read side's ViewUnavailable(name, reason), as ReadModels.view raises it for a view
    # ahead of its store or built from another store (tests/projections/test_both_stores.py
    # makes real ones): here only the stages view is refused.
    from projections.errors import ViewUnavailable

    with running(memory_settings(catch_up_interval=0)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        original = services.read_models.view  # the bound method: ``views[name]`` calls ``view``

        def view(name: str) -> object:
            if name == "stages":
                raise ViewUnavailable("stages", "ahead of its event store (position 9 > 4)")
            return original(name)
        services.read_models.view = view
        opened = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
        episode = opened.json()["episode_id"]
        response = client.get(f"/episodes/{episode}/stages")
        body = _problem(response, 503, "view-unavailable")
        assert response.headers["Retry-After"] == "1"
        assert body["detail"] == ("the stages read model is refused until rebuilt: ahead of its "
                                  "event store (position 9 > 4)")
        assert client.get(f"/episodes/{episode}").status_code == 200  # the others still answer
