"""Stores for the read-model tests: SQLite files and PostgreSQL (a fresh schema per test).

The PostgreSQL server is the one ``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER`` name (the
suite's cluster); until the shared fixture (tests/support/postgres.py) lands this small local
one is used (the lead reconciles them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from application.access_log import AccessLog
from application.outcomes import OutcomesApplication
from projections.storage import PostgresViewStore, SQLiteViewStore, ViewStore

_OWN: dict[str, str] = {}


def postgres_server() -> dict[str, str]:
    """The suite's server (``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER``), else a
    throwaway cluster of this test process (initdb as the ``postgres`` user when run as root,
    trust auth, a free loopback port; stopped at exit). Never skips."""
    host = os.environ.get("OUTCOMES_TEST_POSTGRES_HOST")
    if host:
        return {"host": host, "port": os.environ.get("OUTCOMES_TEST_POSTGRES_PORT", "5432"),
                "user": os.environ.get("OUTCOMES_TEST_POSTGRES_USER", "postgres")}
    if not _OWN:
        _OWN.update(_start_cluster())
    return {"host": "127.0.0.1", "port": _OWN["port"], "user": "postgres"}


def _start_cluster() -> dict[str, str]:
    import atexit
    import shutil
    import socket
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="pg-views-test-")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    subprocess.run([*as_user, "initdb", "-D", f"{folder}/data", "--auth=trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, "pg_ctl", "-D", f"{folder}/data", "-l", f"{folder}/log", "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} "
                    f"-c fsync=off -c max_connections=300", "start"],
                   check=True, capture_output=True)
    atexit.register(lambda: subprocess.run(
        [*as_user, "pg_ctl", "-D", f"{folder}/data", "-m", "immediate", "stop"],
        capture_output=True))
    return {"port": port, "folder": folder}


@dataclass
class Store:
    """One test's event stores and view store: ``kind`` sqlite or postgres; ``env(store)`` the
    library environment of an event store ("outcomes", "access-log"); ``views()`` a new
    ViewStore over the same place (as another process would open it)."""

    kind: str
    folder: Path
    schema: str | None = None
    server: dict[str, str] | None = None

    def env(self, store: str = "outcomes", *, schema: str | None = None) -> dict[str, str]:
        if self.kind == "sqlite":
            name = "outcomes.sqlite" if store == "outcomes" else f"{store}.sqlite"
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(self.folder / name), "SQLITE_LOCK_TIMEOUT": "10"}
        assert self.server is not None
        return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "postgres",
                "POSTGRES_HOST": self.server["host"], "POSTGRES_PORT": self.server["port"],
                "POSTGRES_USER": self.server["user"], "POSTGRES_PASSWORD": "",
                "POSTGRES_SCHEMA": schema or str(self.schema), "CREATE_TABLE": "y",
                "POSTGRES_ENABLE_DB_FUNCTIONS": "n", "POSTGRES_POOL_SIZE": "5"}

    def new_schema(self) -> str:
        assert self.server is not None
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dbname="postgres", autocommit=True, **self.server) as conn:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
        return schema

    def app(self, **kwargs: Any) -> OutcomesApplication:
        return OutcomesApplication(self.env("outcomes"), **kwargs)

    def access_log(self) -> AccessLog:
        return AccessLog(self.env("access-log"))

    def views(self, schema: str | None = None) -> ViewStore:
        if self.kind == "sqlite":
            return SQLiteViewStore(self.folder / "views")
        return PostgresViewStore(self.env(), schema or str(self.schema))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store("sqlite", tmp_path)
        return
    server = postgres_server()
    made = Store("postgres", tmp_path, server=server)
    made.schema = made.new_schema()
    yield made
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                            (made.schema,)).fetchall()
        for (name,) in rows:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
                psycopg.sql.Identifier(name)))
