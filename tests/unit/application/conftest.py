"""Fixtures for the application tests: a fixed clock, the in-memory store by default, SQLite on request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from application.outcomes import OutcomesApplication

NOW = datetime(2027, 12, 31, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "outcomes.sqlite")}


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> OutcomesApplication:
    """The application with the clock stopped at 2027-12-31 UTC: on the in-memory store, or on a
    SQLite file in ``tmp_path`` for a test marked ``file_store`` (the store is what it tests)."""
    if request.node.get_closest_marker("file_store"):
        return OutcomesApplication(request.getfixturevalue("sqlite_env"), clock=fixed_clock)
    return OutcomesApplication({}, clock=fixed_clock)


@pytest.fixture
def sqlite_app_factory(sqlite_env: dict[str, str]) -> Callable[[], OutcomesApplication]:
    """Makes applications on one SQLite file: each call is like a separate process."""
    return lambda: OutcomesApplication(sqlite_env, clock=fixed_clock)
