"""``audit verify`` and episode snapshots (ADR 0025): snapshots are derived data, checked like a
read model against a replay of the events. An edited snapshot row is one "read-model" fault
naming the episode. A row that still decodes is used by the reads, like an edited view row,
until it is dropped (snapshots can always be dropped and are taken again); one that does not
decode is skipped and the events replayed. On SQLite files and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest
from psycopg import sql
from trust_helpers import Ledger

from application.outcomes import project_events
from bootstrap import StartupError, build, init_store
from trust.verify import verify

SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2024, 1, 1)

pytestmark = pytest.mark.file_store


def long_episode(ledger: Ledger, assessments: int = 60) -> tuple[UUID, int]:
    """One episode past its first snapshot; returns (id, position of its Opened)."""
    services = build(ledger.settings)
    try:
        app = services.app
        result = app.open_episode(patient_ref="pt-v", clinic_id="clinic-a", recorded_by="t",
                                  criteria="acnp2006", opened_on=START)
        for n in range(assessments):
            app.record_assessment(result.episode_id, instrument="PHQ-9",
                                  total=SCORES[n % len(SCORES)],
                                  administered=START + timedelta(days=3 * n), recorded_by="t")
        services.read_models.catch_up()
    finally:
        services.close()
    assert result.position is not None
    return result.episode_id, result.position


def snapshots_table(ledger: Ledger) -> str:
    if not ledger.postgres:
        return "stored_snapshots"
    return sql.Identifier(ledger.settings.postgres_schema, "outcomes_snapshots").as_string(None)


def test_an_edited_snapshot_is_a_read_model_fault_and_dropping_it_restores_the_reads(
        ledger: Ledger) -> None:
    episode_id, opened_at = long_episode(ledger)
    table = snapshots_table(ledger)
    assert [r[0] for r in ledger.execute(f"SELECT originator_version FROM {table}")] == [50]
    report = verify(ledger.settings, deep=True)
    assert report.ok, report.faults

    # an intruder (or a bad disk) changes the state: one assessment marked voided
    [(state,)] = ledger.execute(f"SELECT state FROM {table}")
    edited = bytes(state).replace(b'"voided":false', b'"voided":true', 1)
    assert edited != bytes(state)
    ledger.execute(f"UPDATE {table} SET state = ?", (edited,))
    for deep in (True, False):  # one episode: the sample is the whole store
        report = verify(ledger.settings, deep=deep)
        assert not report.ok
        assert [(f.store, f.position, f.kind) for f in report.faults] == [
            ("outcomes", opened_at, "read-model")]
        assert f"episode {episode_id} at version 50" in report.faults[0].detail

    # garbage that does not decode: still a fault; the reads skip it
    ledger.execute(f"UPDATE {table} SET state = ?", (b"\x00garbage",))
    assert [f.kind for f in verify(ledger.settings, deep=True).faults] == ["read-model"]
    services = build(ledger.settings)
    try:
        app = services.app
        episode = app.get_episode(episode_id)
        replay = project_events(None, app.events.get(episode_id))
        assert {k: v for k, v in vars(episode).items() if k != "_pending_events"} == {
            k: v for k, v in vars(replay).items() if k != "_pending_events"}
    finally:
        services.close()

    # snapshots are derived: dropped, the store verifies again
    ledger.execute(f"DELETE FROM {table}")
    assert verify(ledger.settings, deep=True).ok


def test_a_store_without_its_snapshots_table_is_refused_until_db_init(ledger: Ledger) -> None:
    """PostgreSQL: the table is made by ``outcomes db init``, and a store without it (made by
    an older version) is refused at start, not left to fail on every read. SQLite: the store
    makes it when it opens."""
    long_episode(ledger, 3)
    table = snapshots_table(ledger)
    ledger.execute(f"DROP TABLE {table}")
    if ledger.postgres:
        with pytest.raises(StartupError, match=r"outcomes_snapshots does not exist: run "
                                               r"`outcomes db init`"):
            build(ledger.settings)
        init_store(ledger.settings)
    services = build(ledger.settings)
    services.close()
    assert ledger.execute(f"SELECT COUNT(*) FROM {table}")[0][0] == 0
    assert verify(ledger.settings, deep=True).ok
