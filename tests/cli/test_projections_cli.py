"""``outcomes projections status`` and ``rebuild`` cover the access log's read model too
(``access-log``, tracked from the access log's own store), on SQLite stores in a temporary folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bootstrap import Settings, build
from cli import app
from domain.access import Access

runner = CliRunner()
AT = datetime(2027, 12, 31, tzinfo=UTC)


@pytest.fixture(autouse=True)
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "outcomes.sqlite"
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(path))
    monkeypatch.setenv("OUTCOMES_VIEWS_DIR", str(tmp_path / "views"))
    return path


def record_accesses(count: int) -> None:
    """Append ``count`` access records to the access log's store (no read model caught up)."""
    services = build(Settings())
    try:
        for n in range(count):
            services.access_log.record(Access(
                sub="ada-audit", authenticated=True, roles=("auditor",), clinics=("clinic-a",),
                clinic_id="clinic-a", method="GET", route="/access-log", episode_id=None,
                run_id=None, assessment_id=None, status=200, at=AT, request_id=f"req-{n}",
                client="127.0.0.1"))
    finally:
        services.close()


def test_status_shows_the_access_log_read_model_and_its_lag() -> None:
    record_accesses(3)
    result = runner.invoke(app, ["projections", "status"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert set(status) == {"episodes", "stages", "audit", "cohort", "fold-inputs", "caseload",
                           "access-log"}
    # the access log's own store's positions
    assert status["access-log"] == {"position": 0, "lag": 3, "state": "ok", "reason": None}
    assert status["episodes"] == {"position": 0, "lag": 0, "state": "ok", "reason": None}


def test_rebuild_access_log_and_all_include_it() -> None:
    record_accesses(2)
    result = runner.invoke(app, ["projections", "rebuild", "access-log"])
    assert result.exit_code == 0, result.output
    assert "access-log: 2 events processed, position 2" in result.output
    everything = runner.invoke(app, ["projections", "rebuild", "all"])
    assert everything.exit_code == 0, everything.output
    assert "episodes: 0 events processed" in everything.output
    assert "access-log: 2 events processed, position 2" in everything.output
    status = json.loads(runner.invoke(app, ["projections", "status"]).output)
    assert status["access-log"] == {"position": 2, "lag": 0, "state": "ok", "reason": None}


def test_an_unknown_read_model_names_access_log_among_the_known() -> None:
    result = runner.invoke(app, ["projections", "rebuild", "nope"])
    assert result.exit_code != 0
    assert "access-log" in result.output
