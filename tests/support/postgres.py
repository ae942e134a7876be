"""PostgreSQL for the tests: the session's server, and a place of its own for every test.

The server: ``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER`` (``make test`` sets them, see
``pg_cluster.py``); when they are unset the session starts a throwaway cluster itself (each
pytest-xdist worker its own), so a test never skips for lack of a server.

A place per test (every name carries the session's pid and the xdist worker, so two workers
or two sessions on one server never meet):

- ``postgres_ledger``: a database of its own holding an initialised ledger in schema
  ``ledger`` (``outcomes db init`` ran once per worker into a template database). The first
  test gets a copy of it (``CREATE DATABASE ... TEMPLATE``, ~90 ms); later ones get that
  database again, brought back to the template's state (``Places.ledger``: ~5 ms, the same
  rows, sequences and objects as a fresh copy; a copy again when a test changed its objects).
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


# Every object of a database outside the system schemas, as one comparable value: relations
# (kind, columns, privileges), schemas, functions, triggers and the database's own settings. A
# ledger whose fingerprint is the template's differs from it in rows and sequences only.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(format('%s.%s:%s:%s:%s', n.nspname, c.relname, c.relkind, c.relacl,
                            (SELECT string_agg(a.attname || ' ' || a.atttypid::text, ','
                                               ORDER BY a.attnum)
                             FROM pg_attribute a
                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
                     ';' ORDER BY n.nspname, c.relname)
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
  (SELECT string_agg(format('%s:%s', nspname, nspacl), ';' ORDER BY nspname)
   FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'),
  (SELECT string_agg(p.oid::regprocedure::text, ';' ORDER BY p.oid::regprocedure::text)
   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
  (SELECT string_agg(tgrelid::regclass::text || '.' || tgname, ';' ORDER BY 1)
   FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(array_to_string(setconfig, ','), ';')
   FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database
                                                WHERE datname = current_database()))))
"""
_OTHER_SESSIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class _Pristine:
    """What a ledger holds just after ``db init``: its fingerprint, and the one SQL script
    that brings a used ledger of the same fingerprint back to it (every row deleted, the
    template's rows inserted again, every sequence where the template's stands)."""

    fingerprint: str
    reset: sql.Composed

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> _Pristine:
        fingerprint = conn.execute(_FINGERPRINT).fetchone()[0]  # type: ignore[index]
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'S') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "ORDER BY 1, 2").fetchall()
        # No foreign-key or user triggers on a reset (replica role): rows go in any order.
        steps = [sql.SQL("BEGIN; SET LOCAL session_replication_role = replica; "
                         "SET LOCAL lock_timeout = '10s'")]
        for schema, name, kind in relations:
            table = sql.Identifier(schema, name)
            if kind == "S":
                last, called = conn.execute(
                    sql.SQL("SELECT last_value, is_called FROM {}").format(table)).fetchone()  # type: ignore[misc]
                steps.append(sql.SQL("SELECT setval({}, {}, {})").format(
                    sql.Literal(f'"{schema}"."{name}"'), sql.Literal(last), sql.Literal(called)))
                continue
            steps.append(sql.SQL("DELETE FROM {}").format(table))
            rows = conn.execute(sql.SQL("SELECT json_agg(t) FROM {} t").format(table)).fetchone()
            if rows is not None and rows[0] is not None:
                steps.append(sql.SQL(
                    "INSERT INTO {} OVERRIDING SYSTEM VALUE "
                    "SELECT * FROM json_populate_recordset(NULL::{}, {})").format(
                        table, table, sql.Literal(psycopg.types.json.Json(rows[0]))))
        steps.append(sql.SQL("COMMIT"))
        return cls(fingerprint, sql.SQL("; ").join(steps))


class Places:
    """Names and lifetimes of one session's databases on one server (one xdist worker).

    Ledgers are reused: ``ledger`` hands out a database that held an earlier test's ledger,
    first brought back to the template's state (its other sessions ended, every row deleted
    and the template's put back, sequences reset: ~5 ms, where a copy costs ~90 ms on a quiet
    machine and more on a loaded one), or a new copy of the template when none is free or a
    test changed one's structure (a new generation's schema, a dropped table: the fingerprint
    differs); ``give_back`` makes it free again."""

    def __init__(self, server: PostgresServer, tag: str = "") -> None:
        self.server = server
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.prefix = _checked(f"t{os.getpid()}_{worker}{tag}")
        self._numbers = itertools.count(1)
        self._template: PostgresLedger | None = None
        self._template_error: LedgerInitError | None = None
        self._pristine: _Pristine | None = None
        self._scratch: str | None = None
        self._made: list[str] = []
        self._free: list[str] = []
        self.copies = 0  # template copies made (a reset ledger is not one)

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
        if name in self._free:
            self._free.remove(name)

    def ledger(self) -> PostgresLedger:
        """A ledger of the caller's own, as ``db init`` left it; give it back with
        ``give_back`` (until then no other caller gets it)."""
        template = self.template()
        while self._free:
            name = self._free.pop()
            if self._reset(name):
                return replace(template, dbname=name)
            self.drop(name)
        self.copies += 1
        return replace(template, dbname=self.database(template.dbname))

    def give_back(self, name: str) -> None:
        """``name`` (from ``ledger``) may be handed out again, once reset."""
        self._free.append(name)

    def _reset(self, name: str) -> bool:
        """Bring ``name`` back to the template's state; False when it cannot be (its
        structure differs, or a lock was not released): drop it then."""
        assert self._pristine is not None
        try:
            with self.server.connect(name) as conn:
                conn.execute(_OTHER_SESSIONS)
                if conn.execute(_FINGERPRINT).fetchone() != (self._pristine.fingerprint,):
                    return False
                conn.execute(self._pristine.reset)
        except psycopg.Error:
            return False
        return True

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
            with ledger.connect() as conn:
                self._pristine = _Pristine.of(conn)
            self._template = ledger
        return self._template

    def scratch(self) -> str:
        """The worker's database for schema-per-test places."""
        if self._scratch is None:
            self._scratch = self.database()
        return self._scratch

    def close(self) -> None:
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
    """A database of the test's own with an initialised ledger (schema ``ledger``), nothing of
    an earlier test's in it."""
    ledger = postgres_places.ledger()
    try:
        yield ledger
    finally:
        postgres_places.give_back(ledger.dbname)


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
