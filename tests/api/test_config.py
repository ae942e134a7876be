"""Settings are the only reader of configuration: the eventsourcing library's own environment
variables (prefixed ``OUTCOMES_``/``RESCORINGS_`` or bare) cannot move the store or change how
events are stored, and ``/health`` reports the recorder actually in use (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_helpers import app_settings, running

from bootstrap import Settings, build

# Library variables that, read from the environment, would move or reshape the event store.
STRAY = {
    "OUTCOMES_PERSISTENCE_MODULE": "eventsourcing.popo",
    "PERSISTENCE_MODULE": "eventsourcing.popo",
    "RESCORINGS_PERSISTENCE_MODULE": "eventsourcing.popo",
    "OUTCOMES_SQLITE_DBNAME": ":memory:",
    "SQLITE_DBNAME": ":memory:",
    "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    "OUTCOMES_IS_SNAPSHOTTING_ENABLED": "y",
    "CREATE_TABLE": "n",
    "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    "OUTCOMES_ENABLE_DB_FUNCTIONS": "y",
}


def _write_close_read(settings: Settings) -> tuple[int, str]:
    """Open an episode, close the services, build them again: (position seen, clinic read back)."""
    services = build(settings)
    try:
        result = services.app.open_episode(patient_ref="p-1", clinic_id="clinic-a",
                                           recorded_by="test")
    finally:
        services.close()
    services = build(settings)
    try:
        position = services.app.recorder.max_notification_id() or 0
        return position, services.app.get_episode(result.episode_id).clinic_id
    finally:
        services.close()


@pytest.mark.parametrize("name", ["OUTCOMES_PERSISTENCE_MODULE", "PERSISTENCE_MODULE"])
def test_a_library_persistence_variable_does_not_move_the_ledger_into_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "eventsourcing.popo")
    settings = app_settings(tmp_path)

    assert _write_close_read(settings) == (1, "clinic-a")
    with running(settings) as client:
        health = client.get("/health").json()
    assert health["store"] == "sqlite"
    assert health["path"] == str(tmp_path / "outcomes.sqlite")
    assert health["position"] == 1


def test_no_library_variable_reaches_the_event_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STRAY.items():
        monkeypatch.setenv(name, value)
    services = build(app_settings(tmp_path))
    try:
        for app in (services.app, services.runs):
            assert type(app.recorder).__name__ == "ChainedSQLiteApplicationRecorder"  # ADR 0022
            assert app.mapper.compressor is None
            assert app.mapper.cipher is None
            # only the write model snapshots its episodes, because its class says so (ADR 0025)
            own = {"IS_SNAPSHOTTING_ENABLED"} if app is services.app else set()
            assert (app.snapshots is not None) == bool(own)
            assert set(app.env) == {"PERSISTENCE_MODULE", "APPLICATION_RECORDER_TOPIC",
                                    "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT", *own}
        assert services.app.env["SQLITE_DBNAME"] == str(tmp_path / "outcomes.sqlite")
        assert services.runs.env["SQLITE_DBNAME"] == str(tmp_path / "rescoring-runs.sqlite")
    finally:
        services.close()
    assert (tmp_path / "outcomes.sqlite").exists()


def test_health_reports_the_recorder_in_use_not_the_setting(tmp_path: Path) -> None:
    settings = app_settings(tmp_path, persistence="memory")
    with running(settings) as client:
        health = client.get("/health").json()
    assert health["store"] == "memory"
    assert health["path"] is None
    assert not (tmp_path / "outcomes.sqlite").exists()


def test_the_start_up_log_line_names_the_store_in_use_and_its_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OUTCOMES_PERSISTENCE_MODULE", "eventsourcing.popo")
    with running(app_settings(tmp_path)):
        pass
    started = [line for line in capsys.readouterr().err.splitlines() if '"started"' in line]
    assert len(started) == 1
    assert '"store": "sqlite"' in started[0]
    assert f'"path": "{tmp_path / "outcomes.sqlite"}"' in started[0]


def test_an_outcomes_variable_that_names_no_setting_is_logged_as_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OUTCOMES_PERSISTENCE_MODULE", "eventsourcing.popo")
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(tmp_path / "outcomes.sqlite"))
    with running(app_settings(tmp_path)):
        pass
    warnings = [line for line in capsys.readouterr().err.splitlines() if "ignored" in line]
    assert len(warnings) == 1
    assert '"ignored": ["OUTCOMES_PERSISTENCE_MODULE"]' in warnings[0]
