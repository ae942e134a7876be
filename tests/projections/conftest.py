"""Stores for the read-model tests: SQLite files and PostgreSQL.

Which stores a test runs on is tests/conftest.py's one mechanism (the ``store`` parametrization,
ids ``[sqlite]`` and ``[postgres]``: this folder is a file-store folder there); this module only
turns the parameter into a ``Store``. On PostgreSQL the place is a database of the test's own
on the session's server (``postgres_database``, tests/support/postgres.py; dropped after the
test with every schema the views made in it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres import PostgresLedger

from application.access_log import AccessLog
from application.outcomes import OutcomesApplication
from projections.storage import PostgresViewStore, SQLiteViewStore, ViewStore


@dataclass
class Store:
    """One test's event stores and view store: ``kind`` sqlite or postgres; ``env(store)`` the
    library environment of an event store ("outcomes", "access-log"); ``views()`` a new
    ViewStore over the same place (as another process would open it)."""

    kind: str
    folder: Path
    schema: str | None = None
    server: dict[str, str] | None = None  # host, port, user
    dbname: str = "postgres"

    def env(self, store: str = "outcomes", *, schema: str | None = None) -> dict[str, str]:
        if self.kind == "sqlite":
            name = "outcomes.sqlite" if store == "outcomes" else f"{store}.sqlite"
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(self.folder / name), "SQLITE_LOCK_TIMEOUT": "10"}
        assert self.server is not None
        return {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": self.dbname,
                "POSTGRES_HOST": self.server["host"], "POSTGRES_PORT": self.server["port"],
                "POSTGRES_USER": self.server["user"], "POSTGRES_PASSWORD": "",
                "POSTGRES_SCHEMA": schema or str(self.schema), "CREATE_TABLE": "y",
                "POSTGRES_ENABLE_DB_FUNCTIONS": "n", "POSTGRES_POOL_SIZE": "5"}

    def new_schema(self) -> str:
        assert self.server is not None
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dbname=self.dbname, autocommit=True, **self.server) as conn:
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


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The test's ``Store`` on ``request.param`` (``"sqlite"`` or ``"postgres"``, from the
    suite's ``store`` parametrization, tests/conftest.py)."""
    kind: str = request.param
    if kind == "sqlite":
        return Store("sqlite", tmp_path)
    assert kind == "postgres", kind
    database: PostgresLedger = request.getfixturevalue("postgres_database")
    server = {"host": database.server.host, "port": str(database.server.port),
              "user": database.server.user}
    made = Store("postgres", tmp_path, server=server, dbname=database.dbname)
    made.schema = made.new_schema()
    return made
