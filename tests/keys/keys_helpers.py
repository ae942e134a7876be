"""Stores with encryption at rest for the keys and erasure tests (imported by name: no package):
settings with a master key on the ``store`` fixture's value, the HAM-D17 trial imported, and the
raw bytes of a store as an attacker with the files (or the database) would read them."""

from __future__ import annotations

import os
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from local_issuer import auth_settings, bearer
from psycopg import sql

from api import create_app
from bootstrap import Services, Settings, build, init_store
from importers.pipeline import Importer, ImportSummary, Pseudonymiser
from importers.tabular import CsvMapping, read_csv

NOW = datetime(2027, 12, 31, tzinfo=UTC)
TRIAL = Path(__file__).parents[1] / "data" / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
PSEUDONYM_KEY = b"keys-test-pseudonym-key-0123456789"
CLINIC = "clinic-a"  # one of the local issuer's clinics (tests/support/local_issuer.py)
HOSTS = "testserver,127.0.0.1,localhost"


def new_key() -> str:
    """A fresh master key as OUTCOMES_CIPHER_KEY takes it."""
    return b64encode(os.urandom(32)).decode()


def fixed_clock() -> datetime:
    return NOW


def settings_for(store: str, request: pytest.FixtureRequest, folder: Path,
                 **overrides: Any) -> Settings:
    """Settings on ``store`` (memory, sqlite files in ``folder``, or the test's own PostgreSQL
    ledger), inline read models, no rate limit; ``overrides`` win (e.g. ``cipher_key``)."""
    fields: dict[str, Any] = {"log_format": "json", "allowed_hosts": HOSTS, "rate_limit": "off",
                              "projections": "inline", "sqlite_path": folder / "outcomes.sqlite",
                              "erasure_log": folder / "erasures.jsonl", **auth_settings()}
    if store == "postgres":
        fields.update(request.getfixturevalue("postgres_ledger").settings_fields())
    else:
        fields["store"] = store
    return Settings(**{**fields, **overrides})


def encrypted(store: str, request: pytest.FixtureRequest, folder: Path,
              **overrides: Any) -> Settings:
    """``settings_for`` with a new master key; on PostgreSQL ``outcomes db init`` ran with it
    (the key tables exist)."""
    settings = settings_for(store, request, folder, cipher_key=new_key(), **overrides)
    if settings.store == "postgres":
        init_store(settings)
    return settings


def import_trial(services: Services, *, limit: int | None = None) -> ImportSummary:
    """The HAM-D17 trial CSV into ``services`` (clinic ``CLINIC``, frank1991), as
    ``outcomes import csv`` does it (README "Importing real data")."""
    records = list(read_csv(TRIAL, TRIAL_MAPPING))
    if limit is not None:
        patients = sorted({getattr(r, "patient", None) or "" for r in records})[:limit]
        records = [r for r in records if (getattr(r, "patient", None) or "") in patients]
    importer = Importer(services.app, clinic_id=CLINIC, criteria="frank1991",
                        source="csv:antidepressant_data.csv",
                        pseudonymise=Pseudonymiser(PSEUDONYM_KEY), recorded_by="test")
    return importer.run(records)


@contextmanager
def client_for(services: Services, settings: Settings) -> Iterator[TestClient]:
    """The API over ``services`` with every role and the test clinics (the local issuer)."""
    with TestClient(create_app(settings, services=services), headers=bearer()) as client:
        yield client


def open_services(settings: Settings) -> Services:
    return build(settings, clock=fixed_clock)


def raw_store_bytes(settings: Settings, services: Services) -> bytes:
    """Everything the outcomes event store holds as stored: on SQLite the file and its WAL
    (and shared-memory) files; on PostgreSQL every row of the schema's ``*_events`` and
    ``*_keys`` tables as text; in memory the stored states themselves."""
    if settings.store == "sqlite":
        base = settings.sqlite_path
        return b"".join(p.read_bytes() for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm"))
                        if p.exists())
    if settings.store == "postgres":
        return postgres_rows(settings, "%\\_events") + postgres_rows(settings, "%\\_key%")
    return b"".join(bytes(n.state) for n in services.app.recorder.select_notifications(
        start=1, limit=1_000_000))


def postgres_connect(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(host=settings.postgres_host, port=settings.postgres_port,
                           user=settings.postgres_user, dbname=settings.postgres_dbname,
                           autocommit=True)


def postgres_rows(settings: Settings, like: str) -> bytes:
    """Every row of the schema's tables named LIKE ``like``, as psql would print them
    (bytea as its hex text, and the raw bytes too)."""
    out = []
    with postgres_connect(settings) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND "
            "table_name LIKE %s", (settings.postgres_schema, like))]
        for table in tables:
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(
                    sql.Identifier(settings.postgres_schema, table))):
                for value in row:
                    out.append(bytes(value) if isinstance(value, (bytes, memoryview))
                               else str(value).encode())
    return b"\n".join(out)
