"""bench.sqlite_synchronous, the bench-only switch of SQLite's synchronous level (ADR 0029):
it refuses a level it does not know and sets the level on connections made after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench import sqlite_synchronous


def test_sqlite_synchronous_patches_later_connections_only_for_a_known_level(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sqlite3, "connect", sqlite3.connect)  # undone after the test
    with pytest.raises(ValueError, match="FULL"):
        sqlite_synchronous.patch("FULL")
    sqlite_synchronous.patch("NORMAL")
    connection = sqlite3.connect(tmp_path / "x.sqlite")
    try:
        assert connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        connection.close()
