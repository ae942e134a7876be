"""The store a command-line test's commands use (the OUTCOMES_* variables tests/cli/conftest.py
sets: SQLite files in the test's folder, or a PostgreSQL ledger of its own), seen from the test:
what it holds and how to put something in it (imported by name: no package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from application.outcomes import OutcomesApplication
from bootstrap import Settings


def register_criteria(criteria_id: str, params: dict[str, Any],
                      settings: Settings | None = None) -> dict[str, Any]:
    """Register a custom set in the store the CLI uses (as ``POST /criteria`` does): position
    1 of an empty store. Returns the set as ``criteria list --json`` shows it."""
    settings = settings or Settings()
    if settings.store == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    store = OutcomesApplication(settings.eventsourcing_env())
    try:
        criteria, _ = store.register_criteria(criteria_id=criteria_id, base="acnp2006",
                                              params=params, source="clinic protocol 2026",
                                              recorded_by="test")
        return criteria.describe()
    finally:
        store.close()


def postgres_event_counts(settings: Settings) -> dict[str, int]:
    """Rows of every event table (``*_events``) in the settings' PostgreSQL schema."""
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    with psycopg.connect(host=settings.postgres_host, port=settings.postgres_port,
                         user=settings.postgres_user, password=password,
                         dbname=settings.postgres_dbname, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name LIKE '%%\\_events' ORDER BY table_name",
            (settings.postgres_schema,))]
        return {table: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
                    psycopg.sql.Identifier(settings.postgres_schema),
                    psycopg.sql.Identifier(table))).fetchone()[0]  # type: ignore[index]
                for table in tables}


def assert_nothing_stored(sqlite_path: Path | None = None) -> None:
    """The command created no store and wrote nothing: on SQLite ``sqlite_path`` (default the
    configured file) does not exist; on PostgreSQL (initialised by the fixture, so its tables
    exist) every event table of the ledger is empty."""
    settings = Settings()
    if settings.store == "postgres":
        counts = postgres_event_counts(settings)
        assert "outcomes_events" in counts, counts  # the ledger the command used, initialised
        assert not any(counts.values()), counts
        return
    path = sqlite_path or settings.sqlite_path
    assert not path.exists(), f"{path} was created"
