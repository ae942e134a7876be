"""The event stores on PostgreSQL (issue 10): ``outcomes db init`` creates every table once (also
when many start together), servers refuse a store that is not initialised, not the configured
one or has database functions on. Two workers reading their writes at the written position on
PostgreSQL: tests/cli/test_serve_workers.py[postgres].

Each test has an empty database of its own on the session's server (``postgres_database``,
tests/support/postgres.py). A PostgreSQL restart under load is tests/faults/test_postgres_restart.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from api_helpers import TEST_HOSTS
from local_issuer import auth_settings
from postgres import PostgresLedger, PostgresServer
from served import free_port
from typer.testing import CliRunner

from application.outcomes import OutcomesApplication
from bootstrap import Settings, StartupError, build, check_store, init_store
from cli import app as cli

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).parents[2]


def pg_settings(ledger: PostgresLedger, folder: Path, **overrides: Any) -> Settings:
    """Settings of ``ledger``'s place (its database, schema ``ledger``)."""
    return Settings(**{
        **ledger.settings_fields(), "postgres_connect_timeout": 2,
        "sqlite_path": folder / "outcomes.sqlite", "log_format": "json",
        "allowed_hosts": TEST_HOSTS, "rate_limit": "off", "catch_up_interval": 0,
        **auth_settings(), **overrides})


def _env(settings: Settings) -> dict[str, str]:
    """The OUTCOMES_* variables a process needs to open ``settings``' store."""
    return {**os.environ, "OUTCOMES_STORE": "postgres",
            "OUTCOMES_POSTGRES_HOST": settings.postgres_host,
            "OUTCOMES_POSTGRES_PORT": settings.postgres_port,
            "OUTCOMES_POSTGRES_USER": settings.postgres_user,
            "OUTCOMES_POSTGRES_DBNAME": settings.postgres_dbname,
            "OUTCOMES_POSTGRES_SCHEMA": settings.postgres_schema,
            "OUTCOMES_SQLITE_PATH": str(settings.sqlite_path)}


def _tables(ledger: PostgresLedger) -> set[str]:
    """Every table in the ledger's database outside PostgreSQL's own schemas, as
    ``schema.table``."""
    with ledger.connect() as conn:
        rows = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                            ).fetchall()
    return {f"{schema}.{table}" for schema, table in rows}


def _generations(ledger: PostgresLedger) -> list[tuple[str, int, int]]:
    with ledger.connect() as conn:
        return [tuple(row) for row in conn.execute(
            "SELECT name, version, generation FROM ledger.view_generations ORDER BY 1, 2")]


# What ``outcomes db init`` creates for schema ``ledger``: the three event stores,
# the read models' catalog, the shadow runs' results, and each read model's generation 1 in a
# schema of its own (``<ledger schema>_<name>_v<version>_g<generation>``) with its tracking
# table and the fingerprint of the store it was built from.
VIEW_TABLES = {
    "access_log_v2": {"access_records", "access_record_clinics"},
    "audit_v1": {"audit_episodes", "audit_events"},
    "caseload_v1": {"caseload", "caseload_safety"},
    "cohort_v3": {"episode_outcomes"},
    "episodes_v2": {"episodes"},
    "fold_inputs_v1": {"fold_inputs"},
    "stages_v1": {"stage_criteria", "stage_events"},
}
INITIALISED = {
    *(f"ledger.{table}" for table in ("outcomes_events", "rescorings_events", "accesslog_events",
                                      "view_generations", "rescoring_runs", "rescoring_results",
                                      # a run's episode-id ranges (ADR 0028)
                                      "rescoring_ranges",
                                      # episode snapshots (ADR 0025)
                                      "outcomes_snapshots")),
    # the hash chain of each event store (trust.chain, ADR 0022)
    *(f"ledger.{store}_events_chain" for store in ("outcomes", "rescorings", "accesslog")),
    *(f"ledger_{view}_g1.{table}" for view, tables in VIEW_TABLES.items()
      for table in (*tables, "tracking", "view_fingerprint")),
}


def test_db_init_creates_every_table_once_and_again_changes_nothing(
        postgres_database: PostgresLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pg_settings(postgres_database, tmp_path)
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    first = CliRunner().invoke(cli, ["db", "init"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0] == (
        f"{settings.postgres_dbname}.{settings.postgres_schema}: event store outcomes "
        f"({settings.postgres_schema}.outcomes_events) ready")
    assert _tables(postgres_database) == INITIALISED
    assert _generations(postgres_database) == []  # every read model at generation 1
    again = CliRunner().invoke(cli, ["db", "init"])
    assert again.exit_code == 0, again.output
    assert again.output == first.output
    assert _tables(postgres_database) == INITIALISED  # no second generation, nothing new
    assert _generations(postgres_database) == []
    services = build(settings)
    try:
        assert services.store.kind == "postgres"
        result = services.app.open_episode(patient_ref="p-1", clinic_id="clinic-a",
                                           recorded_by="test")
        assert services.app.get_episode(result.episode_id).clinic_id == "clinic-a"
        assert result.position == 1
    finally:
        services.close()


def test_many_db_inits_at_once_all_succeed(postgres_database: PostgresLedger,
                                           tmp_path: Path) -> None:
    # Issue 10 measured 24 of 44 processes failing when they created tables together.
    settings = pg_settings(postgres_database, tmp_path)
    processes = [subprocess.Popen([sys.executable, "-m", "cli", "db", "init"], cwd=ROOT,
                                  env=_env(settings), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]
    assert [code for code, _ in results] == [0] * 8, [err for _, err in results if err][:1]
    assert _tables(postgres_database) == INITIALISED  # each once: no read model twice
    assert _generations(postgres_database) == []


def test_a_server_refuses_a_store_that_is_not_initialised(
        postgres_database: PostgresLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pg_settings(postgres_database, tmp_path)
    with pytest.raises(StartupError, match=r"outcomes_events does not exist: run `outcomes db init`"):
        build(settings)
    assert _tables(postgres_database) == set()  # nothing created
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    for command in (["serve"], ["projections", "run", "episodes"]):  # a runner too (trial)
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code == 1, command
        assert refused.output.splitlines()[-1:] == [
            f"error: table {settings.postgres_schema}.outcomes_events does not exist: run "
            "`outcomes db init` (with the same OUTCOMES_POSTGRES_* settings)"], command


def test_a_server_refuses_database_functions_and_another_recorder(
        postgres_database: PostgresLedger, tmp_path: Path) -> None:
    settings = pg_settings(postgres_database, tmp_path)
    init_store(settings)
    with_functions = OutcomesApplication({**settings.eventsourcing_env(),
                                          "POSTGRES_ENABLE_DB_FUNCTIONS": "y"})
    try:
        with pytest.raises(StartupError, match="database functions on"):
            check_store(settings, with_functions)
    finally:
        with_functions.close()
    sqlite = OutcomesApplication(settings.model_copy(update={"store": "sqlite"})
                                 .eventsourcing_env())
    try:
        with pytest.raises(StartupError, match="event store is sqlite, but OUTCOMES_STORE is "
                                               "postgres"):
            check_store(settings, sqlite)
    finally:
        sqlite.close()


def test_an_unreachable_database_at_start_up_is_one_line_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = PostgresLedger(PostgresServer("127.0.0.1", free_port(), "postgres"), "outcomes")
    for name, value in _env(pg_settings(nowhere, tmp_path)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OUTCOMES_POSTGRES_CONNECT_TIMEOUT", "1")
    served = CliRunner().invoke(cli, ["serve"])
    assert served.exit_code == 1
    [line] = served.output.splitlines()
    assert line.startswith("error: the postgres database cannot be reached: ")
