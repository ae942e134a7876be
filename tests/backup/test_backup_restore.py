"""``outcomes backup`` and ``outcomes restore`` on SQLite files and on PostgreSQL (issue 11,
ADR 0024): an online copy taken while a thread writes is a prefix of the live chain and matches
its manifest; a restore into an empty store answers as the original did and verifies; an
altered backup, or the backup of a tampered store, is refused before anything is served (the
previous store left in place); a store open in another process, a missing or too old pg_dump
are one line; the password never reaches pg_dump's command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
import structlog.testing
from backup_helpers import (
    CLINIC,
    answers,
    client_for,
    event_count,
    execute,
    import_trial,
    open_services,
    settings_for,
)

from bootstrap import Settings, init_store
from trust import merkle
from trust.backup import KEYS_NOTE, MANIFEST, BackupError, backup, sqlite_head
from trust.chain import Chain
from trust.checkpoints import write_checkpoint
from trust.restore import RestoreRefused, restore
from trust.verify import verify

pytestmark = pytest.mark.file_store


def test_a_backup_taken_while_a_thread_writes_is_a_prefix_of_the_live_chain(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var")
    services = open_services(settings)
    started, stop = threading.Event(), threading.Event()
    written: list[int] = []

    def write() -> None:
        while not stop.is_set():
            result = services.app.open_episode(patient_ref=f"p{len(written)}", clinic_id=CLINIC,
                                               recorded_by="u", opened_on=date(2026, 1, 5))
            written.append(result.position or 0)
            if len(written) == 5:
                started.set()

    writer = threading.Thread(target=write)
    try:
        writer.start()
        assert started.wait(60)
        write_checkpoint(settings, services)
        before = services.app.recorder.max_notification_id()
        result = backup(settings, tmp_path / "backup")
        after = services.app.recorder.max_notification_id()
        stop.set()
        writer.join(60)
        manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
        assert manifest == result.manifest
        head = manifest["event_stores"]["outcomes"]
        assert before <= head["last_position"] <= after
        assert head["events"] == head["tree_size"] == head["last_position"]
        # the copy is exactly the live chain's first tree_size leaves
        live = Chain.of(services.app.recorder)
        assert merkle.root(live.leaves(upto_size=head["tree_size"])).hex() == head["root"]
        assert live.head().size >= head["tree_size"]
    finally:
        stop.set()
        writer.join(60)
        services.close()
    assert manifest["store"] == store and manifest["keys"] == KEYS_NOTE
    assert "OUTCOMES_CIPHER_KEY" in KEYS_NOTE and "pseudonym key" in KEYS_NOTE
    assert manifest["checkpoint"].startswith("checkpoint-")
    assert set(manifest["event_stores"]) == {"outcomes", "rescoring-runs", "access-log"}
    copied = {p.name for p in (tmp_path / "backup").iterdir()}
    assert copied == {MANIFEST, *manifest["files"]}
    if store == "sqlite":  # the heads read again from the copies themselves
        assert copied >= {"outcomes.sqlite", "access-log.sqlite", "rescoring-runs.sqlite"}
        for name, expected in manifest["event_stores"].items():
            again = sqlite_head(tmp_path / "backup" / f"{name}.sqlite")
            assert (again.tree_size, again.root, again.events) == (
                expected["tree_size"], expected["root"], expected["events"])
        assert not any(name.startswith(("episodes", "stages", "cohort")) for name in copied)


def test_a_restore_into_an_empty_store_answers_as_the_original_and_verifies(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var")
    services = open_services(settings)
    try:
        assert import_trial(services) == 12
        run = services.shadow_runs.request(criteria="acnp2006", clinic_id=CLINIC,
                                           recorded_by="lead")
        assert services.shadow_runs.execute(run.run_id) == "completed"
        with client_for(services, settings) as client:
            before = answers(client)
            shadow = client.get(f"/rescorings/{run.run_id}").json()
        write_checkpoint(settings, services)
    finally:
        services.close()
    backup(settings, tmp_path / "backup")

    target = settings_for(store, request, tmp_path / "restored", empty=True,
                          checkpoint_key_file=settings.checkpoint_key_path())
    result = restore(target, tmp_path / "backup")
    assert result.report.ok and result.report.checkpoint is not None
    assert set(result.rebuilt) == {"episodes", "stages", "audit", "cohort", "fold-inputs", "caseload",
                                   "access-log"}
    assert result.rebuilt["episodes"] == result.manifest["event_stores"]["outcomes"]["events"]
    assert result.erasures == []
    assert verify(target).ok
    services = open_services(target)
    try:
        with client_for(services, target) as client:
            assert answers(client) == before
            assert client.get(f"/rescorings/{run.run_id}").json() == shadow
        # the store goes on: new positions after the restored ones
        last = result.manifest["event_stores"]["outcomes"]["last_position"]
        opened = services.app.open_episode(patient_ref="p-new", clinic_id=CLINIC,
                                           recorded_by="u", opened_on=date(2026, 1, 5))
        assert (opened.position or 0) > last
    finally:
        services.close()
    if store == "sqlite":
        assert not list((tmp_path / "restored").glob(".restore-*"))


def test_restoring_an_older_backup_over_its_store_logs_no_error_for_the_views_it_rebuilds(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # a fresh user's trial: the old store's read models, ahead of the restored events, were
    # logged as "[error] read model refused" before the rebuild, as if the restore had failed
    settings = settings_for(store, request, tmp_path / "var")
    services = open_services(settings)
    try:
        import_trial(services, patients=2)
        backup(settings, tmp_path / "backup")
        services.app.open_episode(patient_ref="p-later", clinic_id=CLINIC, recorded_by="u",
                                  opened_on=date(2026, 1, 5))
        services.read_models.catch_up()
    finally:
        services.close()
    with structlog.testing.capture_logs() as logs:
        result = restore(settings, tmp_path / "backup", force=True)
    assert result.report.ok
    refused = [entry for entry in logs if entry["event"] == "read model refused"]
    assert {entry["log_level"] for entry in refused} == {"info"}, refused
    assert {entry["view"] for entry in refused} >= {"episodes", "audit"}
    assert not [entry for entry in logs if entry["log_level"] == "error"]


def test_an_altered_backup_is_refused_and_nothing_is_restored(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var")
    services = open_services(settings)
    try:
        import_trial(services, patients=3)
    finally:
        services.close()
    result = backup(settings, tmp_path / "backup")
    copy = tmp_path / "backup" / ("outcomes.sqlite" if store == "sqlite" else "ledger.dump")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))

    target = settings_for(store, request, tmp_path / "restored", empty=True)
    with pytest.raises(BackupError, match=f"^{copy.name} differs from the manifest"):
        restore(target, tmp_path / "backup")
    if store == "sqlite":
        assert not target.sqlite_path.exists()
    else:
        assert execute(target, "SELECT to_regclass('ledger.outcomes_events')") == [(None,)]
    assert result.manifest["files"][copy.name]["sha256"] != ""


def test_the_backup_of_a_tampered_store_is_refused_leaving_the_store_in_place(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var")
    services = open_services(settings)
    try:
        import_trial(services, patients=3)
    finally:
        services.close()
    # an intruder edits the stored state of position 3 (sqlite3 / psql on the real table)
    execute(settings, "UPDATE {events} SET state = ? WHERE {pos} = 3", (b'{"total": 0}',))
    backup(settings, tmp_path / "backup")

    target = settings_for(store, request, tmp_path / "restored", empty=True)
    init_store(target)
    previous = open_services(target)
    try:
        import_trial(previous, patients=1)
    finally:
        previous.close()
    events = event_count(target)
    with pytest.raises(RestoreRefused) as refused:
        restore(target, tmp_path / "backup", force=True)
    faults = [(f.kind, f.store, f.position) for f in refused.value.faults]
    assert faults[0] == ("edited", "outcomes", 3), faults
    if store == "sqlite":  # the previous store, untouched, still verifies
        assert event_count(target) == events
        assert verify(target).ok
        assert not list((tmp_path / "restored").glob(".restore-*"))
    with pytest.raises(BackupError, match=r"holds \d+ events: restore into an empty"):
        restore(target, tmp_path / "backup")


@pytest.mark.sqlite_only
def test_a_sqlite_store_open_in_another_process_is_refused(tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    settings = settings_for("sqlite", request, tmp_path / "var")
    open_services(settings).close()
    backup(settings, tmp_path / "backup")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT COUNT(*) FROM stored_events').fetchall(); print('open', flush=True); "
         "sys.stdin.read()", str(settings.sqlite_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(BackupError, match="is open in another process: stop `outcomes serve`"):
            restore(settings, tmp_path / "backup")
    finally:
        holder.communicate("", timeout=30)
    assert restore(settings, tmp_path / "backup").report.ok


@pytest.mark.postgres
@pytest.mark.parametrize("version, message", [
    (None, "pg_dump not found on the PATH: install PostgreSQL's client tools"),
    ("pg_dump (PostgreSQL) 11.22", r"pg_dump 11.22 is older than the server \(PostgreSQL \d+\)"),
])
def test_pg_dump_missing_or_older_than_the_server_is_one_line(
        version: str | None, message: str, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for("postgres", request, tmp_path / "var")
    tools = tmp_path / "bin"
    tools.mkdir()
    if version is not None:
        (tools / "pg_dump").write_text(f"#!/bin/sh\necho '{version}'\n")
        (tools / "pg_dump").chmod(0o700)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(BackupError, match=f"^{message}"):
        backup(settings, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


@pytest.mark.postgres
def test_the_password_reaches_pg_dump_in_its_environment_never_on_its_command_line(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for("postgres", request, tmp_path / "var",
                            postgres_password="pw-Zq81-secret")
    real = shutil.which("pg_dump")
    assert real is not None
    tools, seen = tmp_path / "bin", tmp_path / "seen"
    tools.mkdir()
    (tools / "pg_dump").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> {seen}\necho "PGPASSWORD=$PGPASSWORD" >> {seen}\n'
        f'exec {real} "$@"\n')
    (tools / "pg_dump").chmod(0o700)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    backup(settings, tmp_path / "backup")
    lines = seen.read_text().splitlines()
    arguments = [line for line in lines if not line.startswith("PGPASSWORD=")]
    assert "PGPASSWORD=pw-Zq81-secret" in lines
    assert "--format=custom" in arguments and not any("pw-Zq81" in a for a in arguments)
    assert '--table="ledger"."view_generations"' not in arguments
    assert '--table="ledger"."outcomes_events_chain"' in arguments


def test_memory_has_nothing_to_back_up(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="OUTCOMES_STORE=memory keeps nothing to back up"):
        backup(Settings(store="memory"), tmp_path / "backup")


def test_a_backup_never_writes_into_a_folder_that_holds_anything(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var")
    open_services(settings).close()
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "notes.txt").write_text("mine")
    with pytest.raises(BackupError, match="is not empty: give a new folder"):
        backup(settings, tmp_path / "backup")
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["notes.txt"]
