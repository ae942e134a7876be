"""``outcomes db init`` (issue 10) on the test's store: creates the files (SQLite) or the tables
(PostgreSQL, an empty database of the test's own) the server would, once; again changes nothing
and says the same. (PostgreSQL, many at once and a server after it: tests/api/test_postgres_store.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli import app

VIEWS = {"episodes", "stages", "audit", "cohort", "fold-inputs", "caseload", "access-log",
         "rescorings"}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _postgres_tables(conn: psycopg.Connection[tuple[str, str]]) -> set[tuple[str, str]]:
    return set(conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall())


def test_db_init_creates_the_store_once(store: str, request: pytest.FixtureRequest,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if store == "postgres":  # an empty database instead of the fixture's initialised ledger
        place = request.getfixturevalue("postgres_database")
        for name, value in place.environ().items():
            monkeypatch.setenv(name, value)
    first = CliRunner().invoke(app, ["db", "init"])
    assert first.exit_code == 0, first.output
    if store == "sqlite":
        folder = tmp_path / "var"
        assert first.output.splitlines() == [
            "sqlite: event store outcomes ready", "sqlite: event store rescoring-runs ready",
            "sqlite: event store access-log ready", "sqlite: read models ready"]
        for name in ("outcomes", "rescoring-runs", "access-log"):
            assert "stored_events" in _tables(folder / f"{name}.sqlite")
        views = {p.name.removesuffix(".sqlite").split("-v")[0]
                 for p in (folder / "views").iterdir()}
        assert views >= VIEWS
    else:
        where, schema = f"{place.dbname}.{place.schema}", place.schema
        assert first.output.splitlines() == [
            f"{where}: event store outcomes ({schema}.outcomes_events) ready",
            f"{where}: event store rescoring-runs ({schema}.rescorings_events) ready",
            f"{where}: event store access-log ({schema}.accesslog_events) ready",
            f"{where}: read models ready"]
        with place.connect() as conn:
            tables = _postgres_tables(conn)
        assert {(schema, t) for t in ("outcomes_events", "rescorings_events", "accesslog_events",
                                      "rescoring_results", "rescoring_runs",
                                      "view_generations")} <= tables
        # every other read model in a schema of its own: <schema>_<view>_v<version>_g<generation>
        view_schemas = {s.removeprefix(f"{schema}_").split("_v")[0].replace("_", "-")
                        for s, _ in tables if s != schema}
        assert view_schemas == VIEWS - {"rescorings"}
    again = CliRunner().invoke(app, ["db", "init"])
    assert again.exit_code == 0
    assert again.output == first.output
    if store == "postgres":
        with place.connect() as conn:
            assert _postgres_tables(conn) == tables
