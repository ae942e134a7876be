"""``outcomes alerts sweep`` (ADR 0031): an overdue alert on every open episode without a
scorable assessment for --overdue-days days, none on a closed one, none twice; on SQLite and on
PostgreSQL (tests/cli/conftest.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from typer.testing import CliRunner

from application.outcomes import OutcomesApplication
from bootstrap import Settings
from cli import app

runner = CliRunner()


def episodes() -> tuple[UUID, UUID, UUID]:
    """Three episodes in the CLI's store: one last assessed 40 days ago, one 3 days ago, one
    closed."""
    settings = Settings()
    if settings.store == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date()
    store = OutcomesApplication(settings.eventsourcing_env(create_table=True))
    try:
        ids = []
        for n, last in enumerate((40, 3, 60)):
            opened = today - timedelta(days=last + 7)
            episode_id = store.open_episode(patient_ref=f"pt-{n}", clinic_id="clinic-a",
                                            recorded_by="test", opened_on=opened).episode_id
            store.record_assessment(episode_id, instrument="PHQ-9", total=12,
                                    administered=today - timedelta(days=last),
                                    recorded_by="test")
            ids.append(episode_id)
        store.close_episode(ids[2], discharged_on=today - timedelta(days=50), recorded_by="test")
        return ids[0], ids[1], ids[2]
    finally:
        store.close()


def summary(result: Any) -> dict[str, Any]:
    """The JSON summary the command prints (after any log line of opening the store)."""
    lines = result.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("{"))
    parsed: dict[str, Any] = json.loads("\n".join(lines[start:]))
    return parsed


def alerts_of(episode_id: UUID) -> list[tuple[str, str]]:
    store = OutcomesApplication(Settings().eventsourcing_env())
    try:
        return [(a.kind, a.raised_by or "") for a in store.alerts(episode_id)]
    finally:
        store.close()


def test_the_sweep_flags_the_open_episodes_that_are_overdue_once() -> None:
    stale, recent, closed = episodes()
    result = runner.invoke(app, ["alerts", "sweep"])
    assert result.exit_code == 0, result.output
    done = summary(result)
    assert done["overdue_days"] == 28
    assert (done["episodes"], done["flagged"]) == (2, [str(stale)])
    (alert,) = alerts_of(stale)
    assert alert[0] == "overdue" and alert[1].startswith("cli:")
    assert alerts_of(recent) == [] and alerts_of(closed) == []
    again = runner.invoke(app, ["alerts", "sweep"])
    assert summary(again)["flagged"] == []
    # 3 days without an assessment is overdue under --overdue-days 3
    shorter = runner.invoke(app, ["alerts", "sweep", "--overdue-days", "3"])
    assert summary(shorter)["flagged"] == [str(recent)]


def test_overdue_days_below_one_is_a_usage_error() -> None:
    result = runner.invoke(app, ["alerts", "sweep", "--overdue-days", "0"])
    assert result.exit_code == 2
