"""The event stores on PostgreSQL (issue 10): ``outcomes db init`` creates every table once (also
when many start together), servers refuse a store that is not initialised, not the configured
one or has database functions on, and a PostgreSQL restart under load answers 503 with
Retry-After (never 500), loses no acknowledged write, and recovers without restarting the
service.

This module starts its own throwaway cluster (it stops and starts it), marked ``postgres``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_helpers import TEST_HOSTS, fixed_clock
from fastapi.testclient import TestClient
from local_issuer import auth_settings, bearer
from served import call, serving, write_then_read
from typer.testing import CliRunner

import projections.runner
from api import create_app
from application.outcomes import OutcomesApplication
from bootstrap import Settings, StartupError, build, check_store, init_store
from cli import app as cli

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).parents[2]


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster on a loopback port (trust auth, user postgres)."""

    folder: Path
    port: int

    def ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(self.folder / "data"), "-w", *args]),
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.ctl("-l", str(self.folder / "log"), "-o",
                 f"-c listen_addresses=127.0.0.1 -p {self.port} "
                 f"-c unix_socket_directories={self.folder} -c fsync=off", "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse root: run them as the postgres user when root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="pg-serve-test-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(_as_postgres(["initdb", "-D", str(folder / "data"), "--auth=trust",
                                 "-U", "postgres"]), check=True, capture_output=True, timeout=120)
    server = Cluster(folder, _free_port())
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def pg_settings(cluster: Cluster, folder: Path, schema: str, **overrides: Any) -> Settings:
    return Settings(**{
        "store": "postgres", "postgres_host": "127.0.0.1", "postgres_port": str(cluster.port),
        "postgres_user": "postgres", "postgres_dbname": "postgres", "postgres_schema": schema,
        "postgres_connect_timeout": 2, "sqlite_path": folder / "outcomes.sqlite",
        "log_format": "json", "allowed_hosts": TEST_HOSTS, "rate_limit": "off",
        "catch_up_interval": 0, **auth_settings(), **overrides})


def _env(settings: Settings) -> dict[str, str]:
    """The OUTCOMES_* variables a process needs to open ``settings``' store."""
    return {**os.environ, "OUTCOMES_STORE": "postgres",
            "OUTCOMES_POSTGRES_HOST": settings.postgres_host,
            "OUTCOMES_POSTGRES_PORT": settings.postgres_port,
            "OUTCOMES_POSTGRES_USER": settings.postgres_user,
            "OUTCOMES_POSTGRES_DBNAME": settings.postgres_dbname,
            "OUTCOMES_POSTGRES_SCHEMA": settings.postgres_schema,
            "OUTCOMES_SQLITE_PATH": str(settings.sqlite_path)}


def _tables(cluster: Cluster, schema: str) -> set[str]:
    with psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                         dbname="postgres") as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = %s", (schema,)).fetchall()
    return {row[0] for row in rows}


def _schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def test_db_init_creates_every_table_once_and_again_changes_nothing(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pg_settings(cluster, tmp_path, _schema())
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    first = CliRunner().invoke(cli, ["db", "init"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0] == (
        f"postgres.{settings.postgres_schema}: event store outcomes "
        f"({settings.postgres_schema}.outcomes_events) ready")
    assert _tables(cluster, settings.postgres_schema) == {
        "outcomes_events", "rescorings_events", "accesslog_events"}
    again = CliRunner().invoke(cli, ["db", "init"])
    assert again.exit_code == 0, again.output
    assert again.output == first.output
    services = build(settings)
    try:
        assert services.store.kind == "postgres"
        result = services.app.open_episode(patient_ref="p-1", clinic_id="clinic-a",
                                           recorded_by="test")
        assert services.app.get_episode(result.episode_id).clinic_id == "clinic-a"
        assert result.position == 1
    finally:
        services.close()


def test_many_db_inits_at_once_all_succeed(cluster: Cluster, tmp_path: Path) -> None:
    # Issue 10 measured 24 of 44 processes failing when they created tables together.
    settings = pg_settings(cluster, tmp_path, _schema())
    processes = [subprocess.Popen([sys.executable, "-m", "cli", "db", "init"], cwd=ROOT,
                                  env=_env(settings), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]
    assert [code for code, _ in results] == [0] * 8, [err for _, err in results if err][:1]
    assert _tables(cluster, settings.postgres_schema) == {
        "outcomes_events", "rescorings_events", "accesslog_events"}


def test_a_server_refuses_a_store_that_is_not_initialised(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = pg_settings(cluster, tmp_path, _schema())
    with pytest.raises(StartupError, match=r"outcomes_events does not exist: run `outcomes db init`"):
        build(settings)
    assert _tables(cluster, settings.postgres_schema) == set()  # nothing created
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    served = CliRunner().invoke(cli, ["serve"])
    assert served.exit_code == 1
    assert served.output.splitlines() == [
        f"error: table {settings.postgres_schema}.outcomes_events does not exist: run "
        "`outcomes db init` (with the same OUTCOMES_POSTGRES_* settings)"]


def test_a_server_refuses_database_functions_and_another_recorder(
        cluster: Cluster, tmp_path: Path) -> None:
    settings = pg_settings(cluster, tmp_path, _schema())
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
    for name, value in _env(pg_settings(Cluster(tmp_path, _free_port()), tmp_path,
                                        "public")).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OUTCOMES_POSTGRES_CONNECT_TIMEOUT", "1")
    served = CliRunner().invoke(cli, ["serve"])
    assert served.exit_code == 1
    [line] = served.output.splitlines()
    assert line.startswith("error: the postgres database cannot be reached: ")


def test_a_postgres_restart_under_load_is_503_then_recovers_without_a_restart(
        cluster: Cluster, tmp_path: Path) -> None:
    # The library retries a statement 10 times, each waiting up to the pool timeout for a
    # connection: with 1 s a request answers 503 after ~12 s of outage (16 s here).
    settings = pg_settings(cluster, tmp_path, _schema(), postgres_connect_timeout=1)
    init_store(settings)
    services = build(settings, clock=fixed_clock)
    acknowledged: list[str] = []
    statuses: list[int] = []
    retry_after: set[str | None] = set()
    stop = threading.Event()
    try:
        with TestClient(create_app(settings, services=services), headers=bearer()) as client:
            def write() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    response = client.post("/episodes", json={
                        "patient_ref": f"p-{i}", "clinic_id": "clinic-a"})
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        acknowledged.append(response.json()["episode_id"])
                    elif response.status_code == 503:
                        retry_after.add(response.headers.get("Retry-After"))
                        time.sleep(0.05)
            writer = threading.Thread(target=write)
            writer.start()
            time.sleep(1.0)
            cluster.stop()
            time.sleep(16.0)
            cluster.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not statuses or statuses[-1] != 201):
                time.sleep(0.1)
            time.sleep(1.0)
            stop.set()
            writer.join(timeout=60)
            assert statuses[-1] == 201  # recovered, the same service objects
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["store"] == "postgres"
    finally:
        stop.set()
        services.close()
    assert 500 not in statuses
    assert set(statuses) <= {201, 503}
    assert 503 in statuses
    assert retry_after == {"1"}
    print(f"restart under load: {statuses.count(201)} acknowledged, {statuses.count(503)} 503")
    # Every acknowledged write is stored, exactly once.
    reader = OutcomesApplication(settings.eventsourcing_env())
    try:
        assert all(reader.get_episode(uuid.UUID(e)).clinic_id == "clinic-a" for e in acknowledged)
        # A 503 may still have committed (the answer lost with the connection): stored writes
        # are the acknowledged ones plus at most one per 503, each stored once.
        # (Counted, not the last position: a promoted standby's sequence jumps ahead by up to 32.)
        stored = len(reader.recorder.select_notifications(start=1, limit=100_000))
        assert len(set(acknowledged)) == len(acknowledged)
        assert len(acknowledged) <= stored <= len(acknowledged) + statuses.count(503)
    finally:
        reader.close()


@pytest.mark.server_process
def test_two_workers_on_postgres_read_their_writes_at_the_written_position(
        cluster: Cluster, tmp_path: Path) -> None:
    settings = pg_settings(cluster, tmp_path, _schema())
    init_store(settings)
    env = {k: v for k, v in _env(settings).items() if k.startswith("OUTCOMES_")}
    runners = []
    if hasattr(projections.runner, "run"):  # the runners process the read models (ADR 0021)
        runners = [subprocess.Popen([sys.executable, "-m", "cli", "projections", "run"],
                                    cwd=ROOT, env={**os.environ, **env})]
    try:
        with serving(tmp_path, env) as served:
            results: list[str] = []
            threads = [threading.Thread(target=write_then_read, args=(served, 36, results))
                       for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            assert len(results) == 144
            assert [r for r in results if r != "fresh"] == []
            status, _, health = call(served, "GET", "/health")
            assert status == 200 and isinstance(health, dict)
            assert (health["store"], health["position"]) == ("postgres", 144)
    finally:
        for runner in runners:
            runner.terminate()
            runner.wait(timeout=30)
