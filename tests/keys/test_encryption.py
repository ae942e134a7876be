"""Encryption at rest (ADR 0023): with a master key no patient_ref, score or explanation is in
the stored bytes; the key is checked at start; events stored before encryption still read;
rotation re-wraps keys and leaves every stored event byte as it was."""

from __future__ import annotations

import gc
import hashlib
import time
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from keys_helpers import (
    encrypted,
    new_key,
    open_services,
    postgres_connect,
    raw_store_bytes,
    settings_for,
)

from bootstrap import Services, Settings, StartupError, build
from domain.episode import Episode
from trust.cipher import HEADER, KeyedMapper, is_encrypted, key_id_of
from trust.keys import KeyTable, check_id

PATIENT = "PATIENT-7f3a-Doe-1970"
TOTALS = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8)]


def record_course(services: Services, patient_ref: str = PATIENT) -> UUID:
    """An episode with four PHQ-9 totals (a response is reached on 2026-01-26)."""
    app = services.app
    episode_id = app.open_episode(patient_ref=patient_ref, clinic_id="clinic-a",
                                  recorded_by="clinician-1", opened_on=date(2026, 1, 5)).episode_id
    for day, total in TOTALS:
        app.record_assessment(episode_id, instrument="PHQ-9", administered=date.fromisoformat(day),
                              recorded_by="clinician-1", total=total)
    return episode_id


def secrets_of(services: Services, episode_id: UUID) -> list[bytes]:
    """What must not be readable in the store: the patient_ref, a score as the JSON state holds
    it, and a stage decision's explanation text."""
    events = services.app.episode_events(episode_id)
    explanation = next(e.explanation for e in events if isinstance(e, Episode.ResponseReached))
    return [PATIENT.encode(), b'"reported_total":13', explanation.encode()]


def test_without_a_master_key_the_store_is_plaintext(store: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    """The control: the same course stored without OUTCOMES_CIPHER_KEY is readable (so the
    next test's absence of these bytes means something)."""
    settings = settings_for(store, request, tmp_path)
    services = open_services(settings)
    try:
        episode_id = record_course(services)
        raw = raw_store_bytes(settings, services)
        assert not isinstance(services.app.mapper, KeyedMapper)
        for secret in secrets_of(services, episode_id):
            assert secret in raw, secret
    finally:
        services.close()


@pytest.mark.file_store
def test_with_a_master_key_no_patient_ref_score_or_explanation_is_stored(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        episode_id = record_course(services)
        raw = raw_store_bytes(settings, services)
        for secret in secrets_of(services, episode_id):
            assert secret not in raw, secret
        notifications = services.app.recorder.select_notifications(start=1, limit=100)
        assert notifications and all(is_encrypted(n.state) for n in notifications)
        # the episode's events are under one patient key; reads decrypt them
        key_ids = {key_id_of(n.state) for n in notifications}
        assert len(key_ids) == 1
        assert [a.total for a in services.app.assessments(episode_id)] == [18, 16, 13, 8]
    finally:
        services.close()


def test_every_store_encrypts_with_its_own_system_key(store: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    """Custom criteria (outcomes store) and shadow-run records (their own store) use the
    store's system key; the episode's events their patient's key."""
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        services.app.register_criteria(criteria_id="clinic-strict", base="acnp2006",
                                       params={"response_min_fraction": 0.6}, source="protocol 2026",
                                       recorded_by="admin-1")
        run = services.shadow_runs.request(criteria="acnp2006", recorded_by="lead-7")
        criteria_state = services.app.recorder.select_notifications(start=1, limit=1)[0].state
        run_state = services.runs.recorder.select_notifications(start=1, limit=1)[0].state
        assert key_id_of(criteria_state) == key_id_of(run_state) == "0" * 32
        assert services.app.criteria_set("clinic-strict").params["response_min_fraction"] == "3/5"
        assert services.runs.repository.get(run.run_id).recorded_by == "lead-7"
    finally:
        services.close()


def test_a_wrong_master_key_is_refused_at_start(store: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    if store == "memory":
        pytest.skip("an in-memory store has no keys from an earlier start")  # pragma: no cover
    settings = encrypted(store, request, tmp_path)
    build(settings).close()
    wrong = settings.model_copy(update={"cipher_key": settings_for(
        store, request, tmp_path, cipher_key=new_key()).cipher_key})

    def connections() -> int:
        with postgres_connect(settings) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                "application_name = 'outcomes-outcomes' AND pid != pg_backend_pid()",
                (settings.postgres_dbname,)).fetchone()
        return int(count)

    def settled() -> int:
        """The connections left once closed ones are gone: a closed connection's server process
        may linger a moment (under load, 1 was counted), a leaked one stays."""
        for _ in range(100):
            if (count := connections()) == 0:
                break
            time.sleep(0.1)
        return count

    gc.disable()  # a leaked pool would otherwise be closed by the garbage collector, later
    try:
        with pytest.raises(StartupError) as refused:
            build(wrong)
        if store == "postgres":  # the refused store's pool is closed, not left to __del__
            assert settled() == 0
    finally:
        gc.enable()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("OUTCOMES_CIPHER_KEY is not the master key of the outcomes_keys")
    assert check_id(wrong.master_key() or b"") in message  # the check id, never the key
    assert wrong.cipher_key is not None and wrong.cipher_key.get_secret_value() not in message


test_a_wrong_master_key_is_refused_at_start = pytest.mark.file_store(
    test_a_wrong_master_key_is_refused_at_start)


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ=", ""])
def test_a_malformed_master_key_is_one_line(value: str, tmp_path: Path) -> None:
    settings = Settings(store="memory", cipher_key=value)
    if not value:  # empty: unset, the store is not encrypted
        assert settings.eventsourcing_env().get("LEDGER_MASTER_KEY") is None
        return
    with pytest.raises(StartupError, match=r"^OUTCOMES_CIPHER_KEY must be the base64 of 32 "
                                           r"random bytes \(`outcomes keys generate`"):
        settings.eventsourcing_env()


def test_the_master_key_reaches_the_store_only_as_ledger_master_key() -> None:
    key = new_key()
    settings = Settings(store="memory", cipher_key=key)
    env = settings.eventsourcing_env()
    assert env["LEDGER_MASTER_KEY"] == key
    assert "CIPHER_KEY" not in env and "CIPHER_TOPIC" not in env
    assert key not in repr(settings) and key not in str(settings.model_dump())


@pytest.mark.file_store
def test_events_stored_before_encryption_still_read(store: str, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    plain = settings_for(store, request, tmp_path)
    services = open_services(plain)
    try:
        episode_id = record_course(services)
    finally:
        services.close()
    settings = plain.model_copy(update={"cipher_key": encrypted(
        "memory", request, tmp_path).cipher_key})
    if settings.store == "postgres":
        from bootstrap import init_store
        init_store(settings)
    services = open_services(settings)
    try:
        assert [a.total for a in services.app.assessments(episode_id)] == [18, 16, 13, 8]
        services.app.record_assessment(episode_id, instrument="PHQ-9",
                                       administered=date(2026, 2, 2), recorded_by="clinician-1",
                                       total=6)
        stored = services.app.recorder.select_events(episode_id)
        assert [is_encrypted(s.state) for s in stored][-1] is True
        assert sum(not is_encrypted(s.state) for s in stored) >= 5  # Opened + 4 + a decision
        # the later event is under the patient's key, found from the plaintext Opened
        keys = services.app.mapper.keys  # type: ignore[attr-defined]
        assert key_id_of(stored[-1].state) == keys.key_for_episode(str(episode_id))
        assert [a.total for a in services.app.assessments(episode_id)] == [18, 16, 13, 8, 6]
    finally:
        services.close()


def _event_bytes(services: Services) -> str:
    rows = [(str(n.id), str(n.originator_id), str(n.originator_version), n.topic,
             bytes(n.state).hex())
            for n in services.app.recorder.select_notifications(start=1, limit=100_000)]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.mark.file_store
def test_rotation_rewraps_keys_and_leaves_events_as_stored(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if store == "memory":
        pytest.skip("rotation needs a store that outlives the process")  # pragma: no cover
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        episode_id = record_course(services)
        before = _event_bytes(services)
    finally:
        services.close()
    new = new_key()
    rotated = settings.model_copy(update={"cipher_key": settings_for(
        store, request, tmp_path, cipher_key=new).cipher_key})
    old_master, new_master = settings.master_key(), rotated.master_key()
    assert old_master is not None and new_master is not None
    from bootstrap import EVENT_STORES
    for name, app_class in EVENT_STORES.items():
        app = app_class(settings.eventsourcing_env(name))
        try:
            keys: KeyTable = app.mapper.keys  # type: ignore[attr-defined]
            count = keys.rotate(new_master)
            assert count >= (2 if name == "outcomes" else 0)  # a patient key, the index key
        finally:
            app.close()
    services = open_services(rotated)
    try:
        assert _event_bytes(services) == before
        assert [a.total for a in services.app.assessments(episode_id)] == [18, 16, 13, 8]
        wrapped = _wrapped_keys(services)
        assert wrapped
        for blob in wrapped:
            assert len(aes_key_unwrap(new_master, blob)) == 32
            with pytest.raises(InvalidUnwrap):
                aes_key_unwrap(old_master, blob)
    finally:
        services.close()
    with pytest.raises(StartupError, match="is not the master key"):
        build(settings)


def _wrapped_keys(services: Services) -> list[bytes]:
    keys: KeyTable = services.app.mapper.keys  # type: ignore[attr-defined]
    with keys.sql.transaction(commit=False) as cursor:
        keys.sql.execute(cursor, "SELECT wrapped FROM {keys} WHERE kind != 'check' AND "
                         "wrapped IS NOT NULL")
        return [bytes(r["wrapped"]) for r in cursor.fetchall()]


def test_postgres_key_tables_come_from_db_init(request: pytest.FixtureRequest,
                                               tmp_path: Path) -> None:
    settings = settings_for("postgres", request, tmp_path, cipher_key=new_key())
    with pytest.raises(StartupError, match=r"key table outcomes_keys does not exist: run "
                                           r"`outcomes db init`"):
        build(settings)
    from bootstrap import init_store
    init_store(settings)
    build(settings).close()


test_postgres_key_tables_come_from_db_init = pytest.mark.postgres(
    test_postgres_key_tables_come_from_db_init)


def test_the_header_is_versioned_and_names_the_key() -> None:
    assert HEADER == b"\x00OLK\x01"
    assert not HEADER.startswith(b"{")  # the library's JSON state never starts like this


def _unused(_: Any) -> None:  # keeps the helper imports typed for mypy
    return None
