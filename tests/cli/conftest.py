"""Every command-line test runs on a store of its own, twice (the ``store`` fixture,
tests/conftest.py): SQLite files in a temporary folder (never ``./var``), and a PostgreSQL
ledger of its own (its key files still in the temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _store_in_tmp(store: str, request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(tmp_path / "var" / "outcomes.sqlite"))
    if store == "postgres":
        for name, value in request.getfixturevalue("postgres_ledger").environ().items():
            monkeypatch.setenv(name, value)
