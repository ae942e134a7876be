"""PostgreSQL for the tests: the session's server, and a place of its own for every test.

The server: ``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER`` (``make test`` sets them, see
``pg_cluster.py``); when they are unset the session starts a throwaway cluster itself (each
pytest-xdist worker its own), so a test never skips for lack of a server.

A place per test (every name carries the session's pid and the xdist worker, so two workers
or two sessions on one server never meet):

- ``postgres_ledger``: a database of its own holding an initialised ledger in schema
  ``ledger`` (``outcomes db init`` ran once per worker into a template database; each test
  gets a copy, ``CREATE DATABASE ... TEMPLATE``, ~15 ms, made ahead in a background thread
  and dropped there after the test: cheaper than creating the tables per test, and a copy of
  whatever ``db init`` makes).
- ``postgres_database``: an empty database of its own (for tests that run ``db init``).
- ``fresh_schema``: an empty schema of its own in the worker's scratch database.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_cluster import Cluster
from psycopg import sql

ROOT = Path(__file__).parents[2]
LEDGER_SCHEMA = "ledger"  # not ``public``: the tests exercise OUTCOMES_POSTGRES_SCHEMA
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _checked(name: str) -> str:
    if not _NAME.match(name) or len(name) > 63:
        raise ValueError(f"not a PostgreSQL name we make: {name!r}")
    return name


@dataclass(frozen=True)
class PostgresServer:
    """Where the tests' PostgreSQL listens; the user is a superuser with trust auth."""

    host: str
    port: int
    user: str

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> PostgresServer | None:
        """The server ``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER`` name, else None."""
        env = os.environ if environ is None else environ
        host = env.get("OUTCOMES_TEST_POSTGRES_HOST")
        if not host:
            return None
        return cls(host, int(env.get("OUTCOMES_TEST_POSTGRES_PORT", "5432")),
                   env.get("OUTCOMES_TEST_POSTGRES_USER", "postgres"))

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection (close it, or use it as a context manager)."""
        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE ``name`` (a copy of ``template`` when given)."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked(name)))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(_checked(template)))
        with self.connect() as conn:
            conn.execute(statement)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ``name``, disconnecting whoever is still connected; harmless if gone."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(_checked(name))))

    def databases(self) -> set[str]:
        with self.connect() as conn:
            return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@dataclass(frozen=True)
class PostgresLedger:
    """One ledger's place on the server: a database and a schema in it."""

    server: PostgresServer
    dbname: str
    schema: str = LEDGER_SCHEMA

    def settings_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``bootstrap.Settings`` for this place (COMMON10 contract)."""
        return {"store": "postgres", "postgres_host": self.server.host,
                "postgres_port": str(self.server.port), "postgres_dbname": self.dbname,
                "postgres_user": self.server.user, "postgres_schema": self.schema}

    def environ(self) -> dict[str, str]:
        """The same as ``OUTCOMES_*`` variables (for the CLI and server processes)."""
        return {f"OUTCOMES_{name.upper()}": value
                for name, value in self.settings_fields().items()}

    def connect(self) -> psycopg.Connection[Any]:
        return self.server.connect(self.dbname)


class LedgerInitError(RuntimeError):
    """``outcomes db init`` failed; the message ends with what it printed."""


def init_ledger(ledger: PostgresLedger, timeout: float = 120) -> None:
    """Create the ledger's schema if missing, then run ``outcomes db init`` on it in a process
    of its own (nothing of it stays in the test process). LedgerInitError."""
    with ledger.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(_checked(ledger.schema))))
    env = {**os.environ, **ledger.environ(), "OUTCOMES_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "cli", "db", "init"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise LedgerInitError(f"`outcomes db init` exited {done.returncode} on "
                              f"{ledger.dbname}/{ledger.schema}: {done.stdout} {done.stderr}")


class Places:
    """Names and lifetimes of one session's databases on one server (one xdist worker)."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.prefix = _checked(f"t{os.getpid()}_{worker}")
        self._numbers = itertools.count(1)
        self._template: PostgresLedger | None = None
        self._template_error: LedgerInitError | None = None
        self._scratch: str | None = None
        self._made: list[str] = []
        # One thread copies the next test's ledger and drops the last one's while a test runs:
        # a copy costs ~15 ms on a quiet machine but ~250 ms on a loaded one.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-places")
        self._next: Future[str] | None = None

    def new_name(self) -> str:
        return f"{self.prefix}_{next(self._numbers)}"

    def database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template``); dropped by ``drop`` or ``close``."""
        name = self.new_name()
        self.server.create_database(name, template)
        self._made.append(name)
        return name

    def drop(self, name: str) -> None:
        self.server.drop_database(name)
        self._made.remove(name)

    def ledger_copy(self) -> PostgresLedger:
        """A copy of the template ledger of the caller's own (made ahead, in the background,
        while the previous test ran); give it back with ``drop_later``."""
        template = self.template()
        ready = self._next or self._background.submit(self.database, template.dbname)
        name = ready.result()
        self._next = self._background.submit(self.database, template.dbname)
        return replace(template, dbname=name)

    def drop_later(self, name: str) -> None:
        """Drop ``name`` in the background (the next test need not wait for it)."""
        self._background.submit(self.drop, name)

    def template(self) -> PostgresLedger:
        """The worker's initialised template ledger (built on first use; a failure is kept
        and raised again for every later test rather than retried)."""
        if self._template_error is not None:  # a new exception: re-raising one grows its traceback
            raise LedgerInitError(str(self._template_error)) from None
        if self._template is None:
            ledger = PostgresLedger(self.server, self.database())
            try:
                init_ledger(ledger)
            except LedgerInitError as error:
                self._template_error = error
                raise
            self._template = ledger
        return self._template

    def scratch(self) -> str:
        """The worker's database for schema-per-test places."""
        if self._scratch is None:
            self._scratch = self.database()
        return self._scratch

    def close(self) -> None:
        self._background.shutdown(wait=True)
        for name in list(self._made):
            self.drop(name)


# Read once, at import: the tests themselves do not see the variables (tests/conftest.py hides
# them), so a test of unknown OUTCOMES_* variables or a server process it starts never meets them.
NAMED_SERVER = PostgresServer.from_environ()
SERVER_VARIABLES = ("OUTCOMES_TEST_POSTGRES_HOST", "OUTCOMES_TEST_POSTGRES_PORT",
                    "OUTCOMES_TEST_POSTGRES_USER")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's server: the one the environment names, else a throwaway cluster."""
    named = NAMED_SERVER
    if named is not None:
        yield named
        return
    cluster = Cluster.create()
    try:
        yield PostgresServer(cluster.host, cluster.port, cluster.user)
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_places(postgres_server: PostgresServer) -> Iterator[Places]:
    places = Places(postgres_server)
    try:
        yield places
    finally:
        places.close()


@pytest.fixture
def postgres_ledger(postgres_places: Places) -> Iterator[PostgresLedger]:
    """A database of the test's own with an initialised ledger (schema ``ledger``)."""
    ledger = postgres_places.ledger_copy()
    try:
        yield ledger
    finally:
        postgres_places.drop_later(ledger.dbname)


@pytest.fixture
def postgres_database(postgres_places: Places) -> Iterator[PostgresLedger]:
    """An empty database of the test's own (schema ``ledger`` not created: ``db init``'s job
    or the test's)."""
    name = postgres_places.database()
    try:
        yield PostgresLedger(postgres_places.server, name)
    finally:
        postgres_places.drop(name)


@pytest.fixture
def fresh_schema(postgres_places: Places) -> Iterator[PostgresLedger]:
    """An empty schema of the test's own in the worker's scratch database, dropped after."""
    ledger = PostgresLedger(postgres_places.server, postgres_places.scratch(),
                            postgres_places.new_name())
    with ledger.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(ledger.schema)))
    try:
        yield ledger
    finally:
        with ledger.connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(ledger.schema)))


def require_postgres(settings: Any) -> None:
    """Fail the test (clearly) when ``settings`` would not run on PostgreSQL: a ``Settings``
    without the contract's ``store`` field ignores ``store="postgres"`` and would run on SQLite."""
    if getattr(settings, "store", None) != "postgres":
        pytest.fail("bootstrap.Settings has no store='postgres' (the COMMON10 contract's store "
                    "and postgres_* settings): this test cannot run on PostgreSQL yet",
                    pytrace=False)
