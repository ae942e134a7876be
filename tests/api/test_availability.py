"""The database breaker (api.availability): while PostgreSQL is away every request is a 503
with Retry-After at once, touching nothing; it closes when the database answers again."""

from __future__ import annotations

import threading
import time

import pytest
from eventsourcing import persistence
from fastapi.testclient import TestClient

from api.availability import Breaker


class Database:
    """A probe target that is up or down, counting probes."""

    def __init__(self) -> None:
        self.up, self.probes = True, 0

    def probe(self) -> None:
        self.probes += 1
        if not self.up:
            raise persistence.OperationalError("connection refused")


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def database(client: TestClient) -> object:
    """The app's breaker replaced by one probing a ``Database`` every 20 ms."""
    db = Database()
    breaker = Breaker(db.probe, interval=0.02)
    client.app.state.breaker.stop()  # type: ignore[attr-defined]
    client.app.state.breaker = breaker  # type: ignore[attr-defined]
    breaker.start()
    yield db
    breaker.stop()


def test_without_a_probe_the_breaker_never_opens() -> None:
    breaker = Breaker(None)
    breaker.trip()
    breaker.start()
    assert breaker.is_open is False


def test_two_failed_probes_open_it_and_every_request_is_503_at_once(
        client: TestClient, database: Database) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    calls: list[object] = []
    services.app.open_episode = lambda **kw: calls.append(kw)
    before = services.app.recorder.max_notification_id()

    database.up = False
    assert wait_for(lambda: client.app.state.breaker.is_open)  # type: ignore[attr-defined]
    started = time.monotonic()
    write = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})
    health = client.get("/health")

    assert time.monotonic() - started < 1.0
    for response in (write, health):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["code"] == "database-unavailable"
    assert calls == []  # the route never ran
    assert services.app.recorder.max_notification_id() == before


def test_the_first_probe_that_answers_closes_it(client: TestClient, database: Database) -> None:
    database.up = False
    assert wait_for(lambda: client.app.state.breaker.is_open)  # type: ignore[attr-defined]
    database.up = True
    assert wait_for(lambda: not client.app.state.breaker.is_open)  # type: ignore[attr-defined]
    assert client.get("/health").status_code == 200


def test_a_request_meeting_the_database_unreachable_opens_it_before_any_probe_fails(
        client: TestClient) -> None:
    gate = threading.Event()
    breaker = Breaker(lambda: gate.wait(), interval=3600)  # probes: never in this test
    client.app.state.breaker.stop()  # type: ignore[attr-defined]
    client.app.state.breaker = breaker  # type: ignore[attr-defined]
    services = client.app.state.services  # type: ignore[attr-defined]

    def unreachable(**_: object) -> None:
        raise persistence.OperationalError("connection refused")
    services.app.open_episode = unreachable

    first = client.post("/episodes", json={"patient_ref": "p-1", "clinic_id": "clinic-a"})

    assert first.status_code == 503
    assert breaker.is_open
    assert client.get("/health").status_code == 503
