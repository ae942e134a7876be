"""Backup and restore with Episode snapshots (ADR 0025, ADR 0024), on SQLite files and on
PostgreSQL, with encryption on: the copy carries the snapshots table (written after the events
it covers, so one moment's copy never holds a snapshot ahead of its events); the restored store
verifies, snapshots included, reads the long episode as a replay of its events does, and goes on
taking snapshots."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from backup_helpers import CLINIC, new_key, open_services, settings_for

from application.outcomes import project_events
from trust.backup import backup
from trust.restore import restore
from trust.verify import verify

pytestmark = pytest.mark.file_store

SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2024, 1, 1)


def state(episode: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(episode).items() if k != "_pending_events"}


def test_a_restored_store_keeps_consistent_snapshots(store: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    key = new_key()
    settings = settings_for(store, request, tmp_path / "var", cipher_key=key)
    services = open_services(settings)
    try:
        app = services.app
        episode_id = app.open_episode(patient_ref="pt-b", clinic_id=CLINIC, recorded_by="t",
                                      criteria="acnp2006", opened_on=START).episode_id
        for n in range(60):
            app.record_assessment(episode_id, instrument="PHQ-9", total=SCORES[n % 10],
                                  administered=START + timedelta(days=3 * n), recorded_by="t")
        before = state(app.get_episode(episode_id))
        assert app.snapshots is not None
        assert [s.originator_version for s in app.snapshots.recorder.select_events(
            episode_id)] == [50]
    finally:
        services.close()
    backup(settings, tmp_path / "backup")

    target = settings_for(store, request, tmp_path / "restored", empty=True, cipher_key=key,
                          checkpoint_key_file=settings.checkpoint_key_path())
    result = restore(target, tmp_path / "backup")
    assert result.report.ok
    assert verify(target, deep=True).ok
    services = open_services(target)
    try:
        app = services.app
        assert app.snapshots is not None
        assert [s.originator_version for s in app.snapshots.recorder.select_events(
            episode_id)] == [50]
        assert state(app.get_episode(episode_id)) == before
        assert state(app.get_episode(episode_id)) == state(
            project_events(None, app.events.get(episode_id)))
        for n in range(60, 100):  # the restored store goes on snapshotting
            app.record_assessment(episode_id, instrument="PHQ-9", total=SCORES[n % 10],
                                  administered=START + timedelta(days=3 * n), recorded_by="t")
        assert [s.originator_version for s in app.snapshots.recorder.select_events(
            episode_id)] == [50, 100]
    finally:
        services.close()
