"""``outcomes db init`` on SQLite (issue 10): creates the files and tables the server would,
once; again changes nothing and says the same. (PostgreSQL: tests/api/test_postgres_store.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from cli import app


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_db_init_creates_the_sqlite_files_once(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    first = CliRunner().invoke(app, ["db", "init"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        "sqlite: event store outcomes ready", "sqlite: event store rescoring-runs ready",
        "sqlite: event store access-log ready", "sqlite: read models ready"]
    for name in ("outcomes", "rescoring-runs", "access-log"):
        assert "stored_events" in _tables(folder / f"{name}.sqlite")
    views = {p.name.removesuffix(".sqlite").split("-v")[0] for p in (folder / "views").iterdir()}
    assert views >= {"episodes", "stages", "audit", "cohort", "access-log", "rescorings"}
    again = CliRunner().invoke(app, ["db", "init"])
    assert again.exit_code == 0
    assert again.output == first.output
