"""Erasure end to end (issue 11, GDPR Art. 17; ADR 0023): the HAM-D17 trial imported with
encryption on, two patients erased, then every answer about them is "no such episode" (404),
never a 500; cohort figures and shadow-run results leave them out; their events read as
ErasedEvent; a rebuild of the read models gives the same answers; erasing is idempotent and
logged; the log re-applied to an older copy of the store erases them again."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from keys_helpers import (
    CLINIC,
    client_for,
    encrypted,
    import_trial,
    open_services,
    raw_store_bytes,
    settings_for,
)

from application.erasure import (
    ErasureRefused,
    UnknownPatientError,
    erase_patient,
    reapply_erasure_log,
)
from bootstrap import Services, Settings
from domain.erasure import Erasure, ErasureCompleted
from projections.runner import READ_MODELS
from trust.cipher import ErasedEvent, key_id_of
from trust.verify import verify

REASON = "GDPR Art. 17 request of 2026-11-30"


def all_pages(client: TestClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list (following ``next``); asserts 200 on each page."""
    items: list[dict[str, Any]] = []
    response = client.get(url, params={"limit": 200, **params})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if not body["next"]:
            return items
        response = client.get(body["next"])


def answers(client: TestClient) -> dict[str, Any]:
    """What the API says about the clinic: the episode list, the cohort figures, the audit
    trail's episode ids."""
    episodes = all_pages(client, "/episodes", clinic_id=CLINIC)
    outcomes = client.get(f"/clinics/{CLINIC}/outcomes")
    assert outcomes.status_code == 200, outcomes.text
    audit = all_pages(client, "/audit", clinic_id=CLINIC)
    return {"episodes": [(e["episode_id"], e["stage"], e["latest"]) for e in episodes],
            "outcomes": outcomes.json(), "audited": sorted({a["episode_id"] for a in audit}),
            "audit_events": len(audit)}


@pytest.fixture
def trial(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        summary = import_trial(services)
        assert summary.episodes_opened == 172
        yield settings, services
    finally:
        services.close()


def shadow_run(services: Services) -> UUID:
    run = services.shadow_runs.request(criteria="acnp2006", clinic_id=CLINIC,
                                       recorded_by="lead-7")
    assert services.shadow_runs.execute(run.run_id) == "completed"
    return run.run_id


def test_erasing_two_patients_end_to_end(trial: Any) -> None:
    settings, services = trial
    run_id = shadow_run(services)
    with client_for(services, settings) as client:
        before = answers(client)
        chosen = before["episodes"][:2]
        erased = [UUID(episode_id) for episode_id, _, _ in chosen]
        refs = [client.get(f"/episodes/{e}").json()["patient_ref"] for e in erased]
        run_before = client.get(f"/rescorings/{run_id}").json()
        assert client.get(f"/rescorings/{run_id}/episodes/{erased[0]}").status_code == 200

        results = [erase_patient(services, ref, REASON, "admin-1",
                                 erasure_log=settings.erasure_log_path()) for ref in refs]
        assert [r.episode_ids for r in results] == [(str(erased[0]),), (str(erased[1]),)]
        assert [r.destroyed for r in results] == [1, 1]
        assert all(r.position is not None and not r.already_erased for r in results)
        assert [r.readable_events for r in results] == [0, 0]

        # every answer about an erased episode: 404, never a 500
        for episode_id in erased:
            for path in ("", "/assessments", "/stages", "/audit"):
                response = client.get(f"/episodes/{episode_id}{path}")
                assert response.status_code == 404, (path, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
            response = client.post(f"/episodes/{episode_id}/assessments", json={
                "instrument": "HAM-D17", "administered_on": "2004-06-01", "total": 10})
            assert response.status_code == 404, response.text
            response = client.get(f"/rescorings/{run_id}/episodes/{episode_id}")
            assert response.status_code == 404, response.text

        after = answers(client)
        assert [e for e in before["episodes"] if UUID(e[0]) not in erased] == after["episodes"]
        assert after["outcomes"]["episodes"] == before["outcomes"]["episodes"] - 2 == 170
        assert not {str(e) for e in erased} & set(after["audited"])
        assert len(after["audited"]) == 170
        run_after = client.get(f"/rescorings/{run_id}")
        assert run_after.status_code == 200, run_after.text
        assert run_after.json()["episodes"] == run_before["episodes"] - 2
        changes = all_pages_changes(client, run_id)
        assert not {str(e) for e in erased} & {c["episode_id"] for c in changes}
        assert client.get(f"/episodes?patient_ref={refs[0]}").json()["items"] == []

        # their events read as ErasedEvent (decoding never raises); the others still read
        for episode_id in erased:
            events = [services.app.mapper.to_domain_event(s)
                      for s in services.app.recorder.select_events(episode_id)]
            assert events and all(isinstance(e, ErasedEvent) for e in events)
            assert events[0].topic == "outcome-ledger:Episode.Opened"
            assert events[0].originator_id == episode_id and events[0].timestamp is None
        kept = UUID(after["episodes"][0][0])
        assert client.get(f"/episodes/{kept}/assessments").status_code == 200

        # the ErasureCompleted records: who, why, which keys and episodes; no patient_ref
        record = services.app.repository.get(results[0].erasure_id)
        assert isinstance(record, Erasure)
        assert (record.erased_by, record.reason, record.episode_ids) == (
            "admin-1", REASON, [str(erased[0])])
        stored = services.app.recorder.select_notifications(
            start=1, limit=10, topics=[ErasureCompleted.TOPIC])
        assert [n.id for n in stored] == [r.position for r in results]
        for ref in refs:
            assert ref.encode() not in raw_store_bytes(settings, services)

        # a rebuild of every read model gives the same answers
        for name in READ_MODELS:
            services.read_models.rebuild(name)
        assert answers(client) == after
        # the chain covers the ciphertext, which erasure leaves as it was: it still verifies,
        # and every read model agrees with the events (the erased episodes absent from both)
        report = verify(settings, services=services, deep=True)
        assert report.ok, report.faults
        assert not [note for note in report.notes if "not compared" in note], report.notes
        assert report.heads["outcomes"].size == len(services.app.recorder.select_notifications(
            start=1, limit=100_000))
    log = settings.erasure_log_path().read_text().splitlines()
    assert [json.loads(line)["episode_ids"] for line in log] == [[str(e)] for e in erased]
    assert not any(ref in line for ref in refs for line in log)
    if settings.store != "memory":
        assert stat.S_IMODE(settings.erasure_log_path().stat().st_mode) == 0o600


def all_pages_changes(client: TestClient, run_id: UUID) -> list[dict[str, Any]]:
    response = client.get(f"/rescorings/{run_id}/changes", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_erasing_again_says_already_erased_and_a_new_episode_gets_a_new_key(
        trial: Any) -> None:
    settings, services = trial
    services.read_models.catch_up()
    first = services.read_models.episodes.find(clinic_id=CLINIC, limit=1)[0][0]
    ref, old_episode = first["patient_ref"], UUID(first["episode_id"])
    done = erase_patient(services, ref, REASON, "admin-1", erasure_log=settings.erasure_log_path())
    again = erase_patient(services, ref, "again", "admin-1",
                          erasure_log=settings.erasure_log_path())
    assert again.already_erased and again.destroyed == 0 and again.position is None
    assert len(settings.erasure_log_path().read_text().splitlines()) == 1
    opened = services.app.open_episode(patient_ref=ref, clinic_id=CLINIC, recorded_by="c-1",
                                       criteria="frank1991", instrument="HAM-D17",
                                       opened_on=date(2026, 1, 5))
    new_state = services.app.recorder.select_events(opened.episode_id)[0].state
    assert key_id_of(new_state) not in done.key_ids
    assert services.app.get_episode(opened.episode_id).patient_ref == ref
    services.read_models.catch_up()
    found = services.read_models.episodes.find(patient_ref=ref)[0]
    assert [e["episode_id"] for e in found] == [str(opened.episode_id)]
    assert str(old_episode) != str(opened.episode_id)


def test_an_unknown_patient_is_refused(trial: Any) -> None:
    _, services = trial
    with pytest.raises(UnknownPatientError, match="no episode of this patient_ref"):
        erase_patient(services, "pt-nobody", REASON, "admin-1")


def test_without_a_master_key_erasure_refuses(store: str, request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    services = open_services(settings_for(store, request, tmp_path))
    try:
        with pytest.raises(ErasureRefused, match="OUTCOMES_CIPHER_KEY is not set"):
            erase_patient(services, "pt-any", REASON, "admin-1")
    finally:
        services.close()


def test_plaintext_events_of_an_erased_patient_are_counted_and_dropped(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A patient whose episode was stored before encryption was on: its events cannot be
    shredded (events are never edited); the erasure says how many stay readable, and the
    episode answers 404 and leaves the read models all the same."""
    if store == "memory":
        pytest.skip("the store must outlive switching the key on")  # pragma: no cover
    plain = settings_for(store, request, tmp_path)
    services = open_services(plain)
    try:
        import_trial(services, limit=3)
    finally:
        services.close()
    settings = encrypted(store, request, tmp_path, **plain.model_dump(
        include={"sqlite_path", "postgres_dbname", "postgres_schema"}))
    services = open_services(settings)
    try:
        services.read_models.catch_up()
        row = services.read_models.episodes.find(clinic_id=CLINIC, limit=1)[0][0]
        episode_id = UUID(row["episode_id"])
        stored = len(services.app.recorder.select_events(episode_id))
        result = erase_patient(services, row["patient_ref"], REASON, "admin-1")
        assert result.readable_events == stored > 0
        assert result.episode_ids == (str(episode_id),) and result.destroyed == 1
        services.read_models.catch_up()
        assert services.read_models.episodes.get(episode_id) is None
        assert services.read_models.cohort.outcomes(CLINIC).episodes == 2
        with client_for(services, settings) as client:
            assert client.get(f"/episodes/{episode_id}/assessments").status_code == 404
            assert client.get(f"/episodes/{episode_id}/audit").status_code == 404
        for name in READ_MODELS:
            services.read_models.rebuild(name)
        assert services.read_models.episodes.get(episode_id) is None
        assert services.read_models.cohort.outcomes(CLINIC).episodes == 2
    finally:
        services.close()


test_plaintext_events_of_an_erased_patient_are_counted_and_dropped = pytest.mark.file_store(
    test_plaintext_events_of_an_erased_patient_are_counted_and_dropped)


@pytest.mark.sqlite_only
def test_the_log_reapplied_to_an_older_copy_erases_again(store: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    """A copy of the store taken before an erasure (a backup) still holds the patient's key;
    ``reapply_erasure_log`` destroys it again and appends the missing record."""
    settings = encrypted(store, request, tmp_path / "live")
    services = open_services(settings)
    try:
        import_trial(services, limit=5)
        services.read_models.catch_up()
        row = services.read_models.episodes.find(clinic_id=CLINIC, limit=1)[0][0]
    finally:
        services.close()
    backup = tmp_path / "backup"
    shutil.copytree(settings.sqlite_path.parent, backup)
    services = open_services(settings)
    try:
        done = erase_patient(services, row["patient_ref"], REASON, "admin-1",
                             erasure_log=settings.erasure_log_path())
    finally:
        services.close()
    restored = settings.model_copy(update={"sqlite_path": backup / "outcomes.sqlite",
                                           "views_dir": None})
    results = reapply_erasure_log(restored)
    assert [(r.erasure_id, r.destroyed) for r in results] == [(done.erasure_id, 1)]
    assert results[0].position is not None
    again = reapply_erasure_log(restored)
    assert [(r.destroyed, r.position) for r in again] == [(0, None)]
    services = open_services(restored)
    try:
        events = [services.app.mapper.to_domain_event(s) for s in
                  services.app.recorder.select_events(UUID(row["episode_id"]))]
        assert all(isinstance(e, ErasedEvent) for e in events)
        services.read_models.catch_up()
        assert services.read_models.episodes.get(UUID(row["episode_id"])) is None
    finally:
        services.close()


def _typed(settings: Settings) -> Settings:  # pragma: no cover - keeps imports used
    return settings


@pytest.mark.sqlite_only
def test_the_destroyed_wrapped_key_leaves_the_sqlite_files(store: str,
                                                           request: pytest.FixtureRequest,
                                                           tmp_path: Path) -> None:
    """secure_delete zeroes the freed bytes and the WAL is truncated: the wrapped key is in
    neither the database file nor its WAL after the erasure."""
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        import_trial(services, limit=3)
        services.read_models.catch_up()
        row = services.read_models.episodes.find(clinic_id=CLINIC, limit=1)[0][0]
        keys = services.app.mapper.keys  # type: ignore[attr-defined]
        key_id = keys.key_for_episode(row["episode_id"])
        with keys.sql.transaction(commit=False) as cursor:
            keys.sql.execute(cursor, "SELECT wrapped FROM {keys} WHERE key_id = ?", (key_id,))
            wrapped = bytes(cursor.fetchone()["wrapped"])
        assert wrapped in raw_store_bytes(settings, services)
        erase_patient(services, row["patient_ref"], REASON, "admin-1")
        assert wrapped not in raw_store_bytes(settings, services)
    finally:
        services.close()


def test_the_destroyed_wrapped_key_leaves_the_postgres_table_pages(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """After the erasure's VACUUM the old row version holding the wrapped key is gone from the
    key table's pages (read raw with pageinspect, as a DBA with the data files would)."""
    from keys_helpers import postgres_connect
    from psycopg import sql

    settings = encrypted("postgres", request, tmp_path)
    services = open_services(settings)
    try:
        import_trial(services, limit=3)
        services.read_models.catch_up()
        row = services.read_models.episodes.find(clinic_id=CLINIC, limit=1)[0][0]
        keys = services.app.mapper.keys  # type: ignore[attr-defined]
        key_id = keys.key_for_episode(row["episode_id"])
        with keys.sql.transaction(commit=False) as cursor:
            keys.sql.execute(cursor, "SELECT wrapped FROM {keys} WHERE key_id = ?", (key_id,))
            wrapped = bytes(cursor.fetchone()["wrapped"])

        def pages() -> bytes:
            table = sql.Identifier(settings.postgres_schema, "outcomes_keys")
            with postgres_connect(settings) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
                count = conn.execute(sql.SQL("SELECT pg_relation_size({}::regclass) / 8192")
                                     .format(sql.Literal(table.as_string(conn)))).fetchone()
                assert count is not None
                return b"".join(bytes(conn.execute(
                    "SELECT get_raw_page(%s, %s)", (table.as_string(conn), n)).fetchone()[0])
                    for n in range(int(count[0])))

        assert wrapped in pages()
        erase_patient(services, row["patient_ref"], REASON, "admin-1")
        assert wrapped not in pages()
    finally:
        services.close()


test_the_destroyed_wrapped_key_leaves_the_postgres_table_pages = pytest.mark.postgres(
    test_the_destroyed_wrapped_key_leaves_the_postgres_table_pages)
