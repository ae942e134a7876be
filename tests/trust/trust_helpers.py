"""A small chained ledger for the tamper-evidence tests (imported by name: no package), on
SQLite files or a PostgreSQL ledger of the test's own (the ``store`` fixture; ``file_store``
makes its first value sqlite), and direct access to its real tables (sqlite3 / psycopg), as an
intruder would have."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from bootstrap import Settings, build


@dataclass
class Ledger:
    """The settings of a test's ledger and SQL on its outcomes store's real tables: ``events``
    and ``chain`` name the tables, ``pos`` the position column (rowid / notification_id)."""

    settings: Settings

    @property
    def postgres(self) -> bool:
        return self.settings.store == "postgres"

    @property
    def pos(self) -> str:
        return "notification_id" if self.postgres else "rowid"

    def table(self, name: str) -> str:
        """The qualified name of table ``outcomes``/``chain`` (quoted for PostgreSQL)."""
        if not self.postgres:
            return {"events": "stored_events", "chain": "stored_events_chain"}[name]
        table = {"events": "outcomes_events", "chain": "outcomes_events_chain"}[name]
        return sql.Identifier(self.settings.postgres_schema, table).as_string(None)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement (``?`` placeholders) on the store's database; returns its rows."""
        if self.postgres:
            s = self.settings
            with psycopg.connect(host=s.postgres_host, port=s.postgres_port,
                                 user=s.postgres_user, dbname=s.postgres_dbname,
                                 autocommit=True) as conn:
                cursor = conn.execute(statement.replace("?", "%s").encode(), params)  # type: ignore[call-overload]
                return list(cursor.fetchall()) if cursor.description else []
        with sqlite3.connect(self.settings.sqlite_path) as conn:
            rows = conn.execute(statement, params).fetchall()
        conn.close()
        return rows

    def positions(self) -> list[int]:
        return [r[0] for r in self.execute(
            f"SELECT {self.pos} FROM {self.table('events')} ORDER BY {self.pos}")]


def fill(settings: Settings, episodes: int = 3) -> list[str]:
    """Open ``episodes`` episodes with three PHQ-9 assessments each through the application and
    catch the read models up; returns the episode ids."""
    services = build(settings)
    ids = []
    try:
        app = services.app
        for n in range(episodes):
            episode = app.open_episode(patient_ref=f"p{n}", clinic_id="clinic-a",
                                       recorded_by="u", opened_on=date(2026, 1, 5)).episode_id
            ids.append(str(episode))
            for week, total in enumerate((18, 11, 4)):
                app.record_assessment(episode, instrument="PHQ-9", recorded_by="u", total=total,
                                      administered=date(2026, 1, 5) + timedelta(weeks=week))
        services.read_models.catch_up()
    finally:
        services.close()
    return ids
