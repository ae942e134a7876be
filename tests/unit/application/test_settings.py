"""The store a service reports is read from the recorder in use, and the application never
reads the process environment (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from application.outcomes import OutcomesApplication
from bootstrap import StoreInUse


def test_the_store_kind_comes_from_the_recorder() -> None:
    assert StoreInUse.of(OutcomesApplication({}).recorder) == StoreInUse("memory", None)


def test_an_in_memory_sqlite_database_is_reported_as_memory() -> None:
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": ":memory:"})
    assert StoreInUse.of(app.recorder) == StoreInUse("memory", None)


def test_a_sqlite_file_is_reported_with_its_absolute_path(tmp_path: Path) -> None:
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(tmp_path / "e.sqlite")})
    assert StoreInUse.of(app.recorder) == StoreInUse("sqlite", str(tmp_path / "e.sqlite"))


def test_the_application_ignores_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
    monkeypatch.setenv("OUTCOMES_SQLITE_DBNAME", str(tmp_path / "stray.sqlite"))
    monkeypatch.setenv("CIPHER_TOPIC", "eventsourcing.cryptography:AESCipher")

    app = OutcomesApplication({})

    assert dict(app.env) == {"IS_SNAPSHOTTING_ENABLED": "y"}  # the class's own (ADR 0025)
    assert StoreInUse.of(app.recorder) == StoreInUse("memory", None)
    assert app.mapper.cipher is None
    assert not (tmp_path / "stray.sqlite").exists()
