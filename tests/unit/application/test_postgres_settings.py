"""Settings of the PostgreSQL store (issue 10): ``OUTCOMES_STORE`` with ``OUTCOMES_PERSISTENCE``
as its old name, the library environment of each event store, libpq multi-host with read-write
sessions and keepalives, the projection mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.utils import Environment
from pydantic import ValidationError

from application.postgres import libpq_options
from bootstrap import Settings


def test_outcomes_persistence_is_still_read_as_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_PERSISTENCE", "memory")
    assert Settings().store == "memory"
    monkeypatch.setenv("OUTCOMES_STORE", "sqlite")
    assert Settings().store == "sqlite"  # the new name wins
    monkeypatch.delenv("OUTCOMES_STORE")
    monkeypatch.delenv("OUTCOMES_PERSISTENCE")
    assert Settings(persistence="memory").store == "memory"
    assert Settings(store="postgres").persistence == "postgres"


def test_the_postgres_settings_are_known_variables() -> None:
    environ = {"OUTCOMES_STORE": "postgres", "OUTCOMES_POSTGRES_HOST": "a,b",
               "OUTCOMES_POSTGRES_SCHEMA": "north", "OUTCOMES_POSTGRES_PRE_PING": "y",
               "OUTCOMES_POSTGRES_CONN_MAX_AGE": "60", "OUTCOMES_POSTGRES_POOL_SIZE": "3",
               "OUTCOMES_PROJECTIONS": "runners", "OUTCOMES_MIN_POSITION_TIMEOUT": "2",
               "OUTCOMES_POSTGRES_PASWORD": "typo", "OUTCOMES_PERSISTENCE_MODULE": "x"}
    assert Settings.unknown_variables(environ) == ["OUTCOMES_PERSISTENCE_MODULE",
                                                   "OUTCOMES_POSTGRES_PASWORD"]


def test_sqlite_stores_are_files_beside_the_ledger(tmp_path: Path) -> None:
    settings = Settings(store="sqlite", sqlite_path=tmp_path / "outcomes.sqlite")
    assert settings.eventsourcing_env()["SQLITE_DBNAME"] == str(tmp_path / "outcomes.sqlite")
    assert settings.eventsourcing_env("access-log")["SQLITE_DBNAME"] == str(
        tmp_path / "access-log.sqlite")
    assert settings.eventsourcing_env("rescoring-runs", create_table=True)["SQLITE_DBNAME"] == str(
        tmp_path / "rescoring-runs.sqlite")
    with pytest.raises(ValueError, match="store name"):
        settings.eventsourcing_env("../elsewhere")


def test_the_postgres_environment_has_db_functions_off_and_tables_only_on_init() -> None:
    settings = Settings(store="postgres", postgres_host="db.internal", postgres_port="6432",
                        postgres_dbname="ledger", postgres_user="svc", postgres_password="s3",
                        postgres_schema="north", postgres_pool_size=7, postgres_pre_ping=True)
    env = settings.eventsourcing_env("access-log")
    assert env["PERSISTENCE_MODULE"] == "application.postgres:Factory"
    assert {k: env[k] for k in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DBNAME",
                                "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_SCHEMA",
                                "POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW", "POSTGRES_PRE_PING",
                                "POSTGRES_ENABLE_DB_FUNCTIONS", "CREATE_TABLE")} == {
        "POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6432", "POSTGRES_DBNAME": "ledger",
        "POSTGRES_USER": "svc", "POSTGRES_PASSWORD": "s3", "POSTGRES_SCHEMA": "north",
        "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "6",  # 1 kept open, up to 7
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n", "CREATE_TABLE": "n"}
    assert "POSTGRES_TARGET_SESSION_ATTRS" not in env  # one host: whatever it is
    assert settings.eventsourcing_env(create_table=True)["CREATE_TABLE"] == "y"


def test_several_hosts_ask_for_a_read_write_session_with_keepalives() -> None:
    settings = Settings(store="postgres", postgres_host="pg-a,pg-b", postgres_port="5432,5433",
                        postgres_keepalives_idle=20, postgres_connect_timeout=3)
    options = libpq_options(Environment("Outcomes", settings.eventsourcing_env()))
    assert options == {"target_session_attrs": "read-write", "keepalives": 1,
                       "keepalives_idle": "20", "keepalives_interval": "10",
                       "keepalives_count": "3", "connect_timeout": "3",
                       "application_name": "outcomes-outcomes"}


@pytest.mark.parametrize("schema", ["North", "1st", "a-b", "x;drop", "", "a" * 41])
def test_a_schema_name_is_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValidationError, match="schema name"):
        Settings(postgres_schema=schema)


@pytest.mark.parametrize(("kind", "workers", "projections", "mode"), [
    ("sqlite", 1, "auto", "inline"), ("memory", 1, "auto", "inline"),
    ("sqlite", 2, "auto", "runners"), ("postgres", 1, "auto", "runners"),
    ("postgres", 1, "inline", "inline"), ("sqlite", 1, "runners", "runners")])
def test_the_projection_mode(kind: str, workers: int, projections: str, mode: str) -> None:
    assert Settings(store=kind, workers=workers, projections=projections).projection_mode() == mode
