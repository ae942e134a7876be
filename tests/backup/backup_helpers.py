"""Stores for the backup and restore tests (imported by name: no package): settings on the
``store`` fixture's value, a second, empty place to restore into, the HAM-D17 trial imported, the
API's answers about a clinic, and SQL on the real tables as an intruder would run it."""

from __future__ import annotations

import os
import sqlite3
from base64 import b64encode
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
from importers.pipeline import Importer, Pseudonymiser
from importers.tabular import CsvMapping, read_csv

NOW = datetime(2027, 12, 31, tzinfo=UTC)
TRIAL = Path(__file__).parents[1] / "data" / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
CLINIC = "clinic-a"  # one of the local issuer's clinics
HOSTS = "testserver,127.0.0.1,localhost"


def fixed_clock() -> datetime:
    return NOW


def new_key() -> str:
    """A fresh master key as OUTCOMES_CIPHER_KEY takes it."""
    return b64encode(os.urandom(32)).decode()


def settings_for(store: str, request: pytest.FixtureRequest, folder: Path, *,
                 empty: bool = False, **overrides: Any) -> Settings:
    """Settings on ``store`` (sqlite files in ``folder``, or PostgreSQL: the test's own
    initialised ledger, or with ``empty`` an empty database of its own), key files, checkpoints
    and erasure log in ``folder``; inline read models, no periodic checkpoints."""
    fields: dict[str, Any] = {"log_format": "json", "allowed_hosts": HOSTS, "rate_limit": "off",
                              "projections": "inline", "sqlite_path": folder / "outcomes.sqlite",
                              "erasure_log": folder / "erasures.jsonl", "checkpoint_interval": 0,
                              **auth_settings()}
    if store == "postgres":
        fixture = "postgres_database" if empty else "postgres_ledger"
        fields.update(request.getfixturevalue(fixture).settings_fields())
    else:
        fields["store"] = store
    settings = Settings(**{**fields, **overrides})
    if store == "postgres" and not empty and settings.cipher_key is not None:
        init_store(settings)  # the key tables
    return settings


def open_services(settings: Settings) -> Services:
    return build(settings, clock=fixed_clock)


def import_trial(services: Services, patients: int = 12) -> int:
    """The first ``patients`` patients of the HAM-D17 trial CSV into ``services`` (clinic
    ``CLINIC``), as ``outcomes import csv`` does; returns the episodes opened."""
    records = list(read_csv(TRIAL, TRIAL_MAPPING))
    chosen = sorted({r.patient for r in records})[:patients]  # type: ignore[attr-defined]
    importer = Importer(services.app, clinic_id=CLINIC, criteria="frank1991",
                        source="csv:antidepressant_data.csv",
                        pseudonymise=Pseudonymiser(b"backup-test-pseudonym-key-0123456"),
                        recorded_by="test")
    summary = importer.run([r for r in records if r.patient in chosen])  # type: ignore[attr-defined]
    services.read_models.catch_up()
    return summary.episodes_opened


def client_for(services: Services, settings: Settings) -> TestClient:
    """The API over ``services`` with every role and the test clinics (use as a context)."""
    return TestClient(create_app(settings, services=services), headers=bearer())


def answers(client: TestClient) -> dict[str, Any]:
    """What the API says about the clinic: every episode (id, stage, latest), each one's stage
    history, and the cohort figures."""
    episodes: list[dict[str, Any]] = []
    response = client.get("/episodes", params={"clinic_id": CLINIC, "limit": 200})
    while True:
        assert response.status_code == 200, response.text
        episodes += response.json()["items"]
        if not response.json()["next"]:
            break
        response = client.get(response.json()["next"])
    stages = {}
    for episode in episodes:
        history = client.get(f"/episodes/{episode['episode_id']}/stages")
        assert history.status_code == 200, history.text
        stages[episode["episode_id"]] = history.json()
    cohort = client.get(f"/clinics/{CLINIC}/outcomes")
    assert cohort.status_code == 200, cohort.text
    return {"episodes": [(e["episode_id"], e["stage"], e["latest"]) for e in episodes],
            "stages": stages, "cohort": cohort.json()}


def execute(settings: Settings, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """One statement on the outcomes store's own database (sqlite3, or psycopg with ``?`` as
    placeholders and ``{events}`` the schema's events table); returns its rows."""
    if settings.store == "postgres":
        table = sql.Identifier(settings.postgres_schema, "outcomes_events").as_string(None)
        with psycopg.connect(host=settings.postgres_host, port=settings.postgres_port,
                             user=settings.postgres_user, dbname=settings.postgres_dbname,
                             autocommit=True) as conn:
            cursor = conn.execute(statement.format(events=table, pos="notification_id")
                                  .replace("?", "%s").encode(), params)
            return list(cursor.fetchall()) if cursor.description else []
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        with conn:
            rows = conn.execute(statement.format(events="stored_events", pos="rowid"),
                                params).fetchall()
    finally:
        conn.close()
    return rows


def event_count(settings: Settings) -> int:
    return int(execute(settings, "SELECT COUNT(*) FROM {events}")[0][0])
