"""Fixtures for the application tests: a fixed clock; each test that takes ``app`` runs twice
(the ``store`` fixture, tests/conftest.py): on the in-memory store (or, marked ``file_store``,
a SQLite file in ``tmp_path``) and on a PostgreSQL ledger of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from postgres import PostgresLedger, require_postgres

from application.outcomes import OutcomesApplication
from bootstrap import Settings

NOW = datetime(2027, 12, 31, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "outcomes.sqlite")}


def postgres_env(ledger: PostgresLedger) -> dict[str, str]:
    """The write model's library environment on ``ledger`` (tables made by ``db init``)."""
    settings = Settings(**ledger.settings_fields())
    require_postgres(settings)
    return settings.eventsourcing_env()


@pytest.fixture
def app(store: str, request: pytest.FixtureRequest) -> Iterator[OutcomesApplication]:
    """The application with the clock stopped at 2027-12-31 UTC, on ``store``: in memory, a
    SQLite file in ``tmp_path`` (a test marked ``file_store``: the store is what it tests), or
    a PostgreSQL ledger of the test's own. Closed after the test."""
    if store == "postgres":
        env = postgres_env(request.getfixturevalue("postgres_ledger"))
    elif store == "sqlite":
        env = request.getfixturevalue("sqlite_env")
    else:
        env = {}
    application = OutcomesApplication(env, clock=fixed_clock)
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def sqlite_app_factory(sqlite_env: dict[str, str]) -> Callable[[], OutcomesApplication]:
    """Makes applications on one SQLite file: each call is like a separate process."""
    return lambda: OutcomesApplication(sqlite_env, clock=fixed_clock)
