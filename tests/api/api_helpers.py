"""Shared constants and a thin driver for the HTTP API tests (imported by name: no package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from local_issuer import auth_settings, bearer
from postgres import PostgresLedger, require_postgres

from api import create_app
from bootstrap import Settings, build

NOW = datetime(2027, 12, 31, tzinfo=UTC)
PATIENT_REF = "PATIENT-7f3a-Doe-1970"
PROBLEM_TYPE = "application/problem+json"
# The TestClient's Host is ``testserver``: allowed in tests only, never by default. Rate limits
# are off but in the tests of limits (a suite bursts past any clinic-sized limit).
TEST_HOSTS = "testserver,127.0.0.1,localhost"
# V1 of the public vectors (PHQ-9 totals), the classic response -> remission -> recovery course.
V1 = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
      ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
      ("2026-03-02", 2), ("2026-03-16", 3), ("2026-03-30", 2), ("2026-04-13", 2),
      ("2026-04-27", 3), ("2026-05-11", 2), ("2026-05-25", 3), ("2026-06-08", 2),
      ("2026-06-22", 1)]


def fixed_clock() -> datetime:
    return NOW


def app_settings(folder: Path, **overrides: Any) -> Settings:
    """Settings for a throwaway SQLite store in ``folder``, JSON logs: for the tests where the
    file store is what is tested (its fsync per commit costs ~5 ms on a slow disk)."""
    return Settings(**{"persistence": "sqlite", "sqlite_path": folder / "outcomes.sqlite",
                       "views_dir": None, "log_format": "json", "log_level": "INFO",
                       "allowed_hosts": TEST_HOSTS, "rate_limit": "off", **auth_settings(),
                       **overrides})


def memory_settings(**overrides: Any) -> Settings:
    """Settings for the in-memory store (read models in private in-memory SQLite databases),
    JSON logs: what the API tests run on unless the store is what they test."""
    return Settings(**{"persistence": "memory", "log_format": "json", "log_level": "INFO",
                       "allowed_hosts": TEST_HOSTS, "rate_limit": "off", **auth_settings(),
                       **overrides})


def postgres_settings(ledger: PostgresLedger, **overrides: Any) -> Settings:
    """Settings for a ledger of the test's own on the tests' PostgreSQL server, JSON logs.
    The API keeps its read models current itself (``projections="inline"``, as on SQLite):
    these in-process tests start no runner (the fault tests do)."""
    settings = Settings(**{**ledger.settings_fields(), "projections": "inline",
                           "log_format": "json", "log_level": "INFO",
                           "allowed_hosts": TEST_HOSTS, "rate_limit": "off", **auth_settings(),
                           **overrides})
    require_postgres(settings)
    return settings


def store_settings(store: str, request: pytest.FixtureRequest, folder: Path,
                   **overrides: Any) -> Settings:
    """Settings for the ``store`` fixture's value: ``memory``, ``sqlite`` (files in
    ``folder``) or ``postgres`` (the test's own ledger, fixture ``postgres_ledger``)."""
    if store == "postgres":
        return postgres_settings(request.getfixturevalue("postgres_ledger"), **overrides)
    if store == "sqlite":
        return app_settings(folder, **overrides)
    return memory_settings(**overrides)


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The app on ``settings`` with the fixed clock, lifespan running; closed afterwards. Every
    request carries the local issuer's default token (every role, every test clinic) unless it
    sends an ``Authorization`` header of its own."""
    services = build(settings, clock=fixed_clock)
    try:
        with TestClient(create_app(settings, services=services), headers=bearer()) as client:
            yield client
    finally:
        services.close()


class Api:
    """A thin driver over the test client: the calls every API test repeats."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def open(self, *, patient_ref: str = PATIENT_REF, clinic_id: str = "clinic-a",
             criteria: str | None = None, **extra: Any) -> str:
        """POST /episodes (opened on 2026-01-05 unless given); asserts 201, returns the id."""
        body: dict[str, Any] = {"patient_ref": patient_ref, "clinic_id": clinic_id,
                                "opened_on": "2026-01-05", **extra}
        if criteria is not None:
            body["criteria"] = criteria
        response = self.client.post("/episodes", json=body)
        assert response.status_code == 201, response.text
        episode_id: str = response.json()["episode_id"]
        return episode_id

    def record(self, episode_id: str, administered_on: str, total: int | None = None, *,
               items: list[int | None] | None = None, instrument: str = "PHQ-9",
               expect: int = 201, **extra: Any) -> dict[str, Any]:
        """POST an assessment; asserts the status and returns the body."""
        body: dict[str, Any] = {"instrument": instrument, "administered_on": administered_on,
                                **extra}
        if total is not None:
            body["total"] = total
        if items is not None:
            body["items"] = items
        response = self.client.post(f"/episodes/{episode_id}/assessments", json=body)
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    def record_all(self, episode_id: str, rows: list[tuple[str, int]]) -> None:
        for day, total in rows:
            self.record(episode_id, day, total)

    def get(self, url: str, **params: Any) -> Any:
        response = self.client.get(url, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def position(self) -> int:
        """The store's last position (GET /health)."""
        position: int = self.get("/health")["position"]
        return position
