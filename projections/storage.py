"""Where read models live: ``SQLiteViewStore`` (one file per read-model generation, or private
in-memory databases) and ``PostgresViewStore`` (one schema per generation), each with a catalog
that says which generation of a read model is live (ADR 0018).

A read model ``name`` at code version ``N`` has generations 1, 2, ...: ``outcomes projections
rebuild`` builds generation K+1 beside the live K and switches the catalog when it has caught
up; readers look the live generation up on every read. Generation 1 on SQLite is the file the
read model always had (``<name>.sqlite``, ``<name>-vN.sqlite``), so existing folders stay valid.

Tables are created once (``create``, under a lock that serialises processes: an advisory lock
on PostgreSQL, a file lock on SQLite); opening with ``create=False`` creates nothing. Each store
also gives the lock that keeps one runner per read model (``runner_lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from trust.files import create_private, private_dir

if TYPE_CHECKING:
    from projections.base import ReadModel

NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
CATALOG = "view_generations"
CATALOG_TABLE = (f"CREATE TABLE IF NOT EXISTS {CATALOG} (name TEXT NOT NULL, version INTEGER NOT "
                 f"NULL, generation INTEGER NOT NULL, PRIMARY KEY (name, version))")


def identifier(text: str) -> str:
    """``text`` if it is a safe SQL name (``^[a-z_][a-z0-9_]*$``, at most 63 bytes), else
    ValueError (names come from our own constants and settings, never from requests)."""
    if not NAME.match(text) or len(text) > 63:
        raise ValueError(f"not a valid SQL name: {text!r}")
    return text


def lock_key(text: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` derived from ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big",
                          signed=True)


class ViewStore(ABC):
    """Where the read models live (see the module docstring). ``kind``: sqlite or postgres."""

    kind = "sqlite"

    @abstractmethod
    def open(self, view_class: type[ReadModel], generation: int, *, create: bool) -> ReadModel:
        """The read model ``view_class`` at ``generation``; its tables are created first when
        ``create`` (idempotent, safe when many processes do it at once)."""

    @abstractmethod
    def live(self, view_class: type[ReadModel]) -> int:
        """The live generation of ``view_class`` at its code version (1 when none recorded)."""

    @abstractmethod
    def switch(self, view_class: type[ReadModel], generation: int) -> None:
        """Make ``generation`` live, atomically (one catalog row)."""

    @abstractmethod
    def generations(self, view_class: type[ReadModel]) -> list[int]:
        """The generations that exist (built or being built), ascending."""

    @abstractmethod
    def drop(self, view_class: type[ReadModel], generation: int) -> None:
        """Delete a (not live) generation: its file or schema."""

    @abstractmethod
    def runner_lock(self, name: str, stop: threading.Event, poll: float = 1.0,
                    waiting: Callable[[], None] | None = None
                    ) -> contextlib.AbstractContextManager[bool]:
        """Hold the lock of read model ``name``'s runner: yields True once held (waiting, every
        ``poll`` seconds, while another process holds it; ``waiting`` is called once when it
        must wait), False when ``stop`` was set first."""

    def create_catalog(self) -> None:
        """Create the catalog if missing (idempotent, safe under concurrency)."""
        return None

    def close(self) -> None:
        """Release connections (views opened from the store are closed by their owner)."""
        return None


class SQLiteViewStore(ViewStore):
    """Read models in ``folder`` (one SQLite file per generation, ``catalog.sqlite`` for the
    live generations, ``<name>.lock`` files for runners), or, with ``folder=None``, in private
    in-memory databases of this process."""

    kind = "sqlite"

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._token = uuid4().hex
        self._memory_catalog: dict[tuple[str, int], int] = {}
        self._thread_lock = threading.Lock()
        self._catalog: SQLiteDatastore | None = None
        if folder is not None:
            private_dir(folder)
            self._catalog = SQLiteDatastore(str(create_private(folder / "catalog.sqlite")),
                                            lock_timeout=10,
                                            pool_size=2)
            # The first connection switches a new file to WAL, which SQLite refuses at once
            # ("database is locked", no busy wait) while another process does the same: so
            # processes starting together create the catalog one at a time.
            with self._creating(), self._catalog.transaction(commit=True) as cursor:
                cursor.execute(CATALOG_TABLE)

    def file_name(self, view_class: type[ReadModel], generation: int) -> str:
        base = view_class.name + (f"-v{view_class.version}" if view_class.version > 1 else "")
        return base + (f"-g{generation}" if generation > 1 else "")

    def _db_name(self, view_class: type[ReadModel], generation: int) -> str:
        name = self.file_name(view_class, generation)
        if self.folder is None:
            return f"file:{name}-{self._token}?mode=memory&cache=shared"
        return str(create_private(self.folder / f"{name}.sqlite"))

    def open(self, view_class: type[ReadModel], generation: int, *, create: bool) -> ReadModel:
        datastore = SQLiteDatastore(self._db_name(view_class, generation), lock_timeout=10)
        view = view_class.on_sqlite()(datastore)
        if create:
            with self._creating():
                view.create_table()
        return view

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        with self._thread_lock:
            if self.folder is None:
                yield
                return
            with open(create_private(self.folder / ".create.lock"), "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def live(self, view_class: type[ReadModel]) -> int:
        key = (view_class.name, view_class.version)
        if self._catalog is None:
            return self._memory_catalog.get(key, 1)
        with self._catalog.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT generation FROM {CATALOG} WHERE name = ? AND version = ?", key)
            row = cursor.fetchone()
        return int(row["generation"]) if row else 1

    def switch(self, view_class: type[ReadModel], generation: int) -> None:
        key = (view_class.name, view_class.version)
        if self._catalog is None:
            self._memory_catalog[key] = generation
            return
        with self._catalog.transaction(commit=True) as cursor:
            cursor.execute(f"INSERT INTO {CATALOG} VALUES (?, ?, ?) ON CONFLICT (name, version) "
                           f"DO UPDATE SET generation = excluded.generation", (*key, generation))

    def generations(self, view_class: type[ReadModel]) -> list[int]:
        if self.folder is None:
            return sorted({1, self.live(view_class)})
        found = {1} if (self.folder / f"{self.file_name(view_class, 1)}.sqlite").exists() else set()
        prefix = self.file_name(view_class, 1) + "-g"
        for path in self.folder.glob(f"{prefix}*.sqlite"):
            suffix = path.name[len(prefix):-len(".sqlite")]
            if suffix.isdigit():
                found.add(int(suffix))
        return sorted(found)

    def drop(self, view_class: type[ReadModel], generation: int) -> None:
        if self.folder is None:
            return
        path = self.folder / f"{self.file_name(view_class, generation)}.sqlite"
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)

    @contextlib.contextmanager
    def runner_lock(self, name: str, stop: threading.Event, poll: float = 1.0,
                    waiting: Callable[[], None] | None = None) -> Iterator[bool]:
        if self.folder is None:
            yield True
            return
        with open(create_private(self.folder / f"{name}.lock"), "a+") as handle:
            def take() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            if not wait_for_lock(take, stop, poll, waiting):
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()


class ViewDatastore(PostgresDatastore):
    """A ``PostgresDatastore`` whose transactions resolve unqualified names in ``schema``
    (``SET LOCAL search_path``, the name passed with ``sql.Identifier``), so the read models'
    statements are the same on both stores. ``share(pool_owner)`` makes it use another
    datastore's pool: every read model of a process then shares one small pool (its ``close``
    leaves the shared pool to its owner). With several hosts (libpq multi-host) it asks for the
    read-write one."""

    shared = False

    def share(self, owner: PostgresDatastore) -> ViewDatastore:
        self.pool.close()
        self.pool, self.shared = owner.pool, True
        return self

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Any]:
        from psycopg import sql
        with super().transaction(commit=commit) as cursor:
            cursor.execute(sql.SQL("SET LOCAL search_path TO {}").format(
                sql.Identifier(self.schema)))
            yield cursor

    def close(self) -> None:
        if not self.shared:
            super().close()


def postgres_datastore(env: Mapping[str, str], schema: str, *, pool_size: int = 1,
                       max_overflow: int | None = None) -> ViewDatastore:
    """A datastore for ``schema`` from a library environment (``POSTGRES_DBNAME``, ``_HOST``,
    ``_PORT``, ``_USER``, ``_PASSWORD``, ``_CONNECT_TIMEOUT`` (s), ``_CONN_MAX_AGE`` (s),
    ``_PRE_PING``, ``_POOL_SIZE`` + ``_MAX_OVERFLOW``: the most the event store's pool opens, the
    default ``max_overflow`` here)."""
    if max_overflow is None:
        max_overflow = (int(env.get("POSTGRES_POOL_SIZE") or 1)
                        + int(env.get("POSTGRES_MAX_OVERFLOW") or 4))
    overflow = max_overflow
    datastore = ViewDatastore(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
        port=env.get("POSTGRES_PORT") or "5432", user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or "",
        connect_timeout=float(env.get("POSTGRES_CONNECT_TIMEOUT") or 5),
        conn_max_age=float(env.get("POSTGRES_CONN_MAX_AGE") or 3600),
        pre_ping=(env.get("POSTGRES_PRE_PING") or "y").lower() in ("y", "yes", "true", "1", "on"),
        idle_in_transaction_session_timeout=30,
        pool_size=pool_size, max_overflow=overflow, schema=identifier(schema))
    kwargs: dict[str, Any] = datastore.pool.kwargs  # type: ignore[assignment]
    if "," in env["POSTGRES_HOST"]:
        kwargs["target_session_attrs"] = "read-write"
    kwargs.update(keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                 keepalives_count=3)
    return datastore


class PostgresViewStore(ViewStore):
    """Read models in PostgreSQL: generation K of read model ``name`` at version N in the schema
    ``<schema>_<name>_v<N>_g<K>`` (``-`` in names as ``_``), with table names as on SQLite; the
    catalog ``<schema>.view_generations``. ``env`` is the event store's library environment
    (``POSTGRES_*``), ``schema`` the ledger's (``Settings.postgres_schema``)."""

    kind = "postgres"

    def __init__(self, env: Mapping[str, str], schema: str = "public") -> None:
        self.env, self.schema = dict(env), identifier(schema)
        # One pool for the catalog and every read model this process opens (min 1 connection,
        # at most 1 + POSTGRES_POOL_SIZE).
        self._catalog = postgres_datastore(self.env, self.schema, pool_size=1)
        self._catalog_ready = False

    def generation_schema(self, view_class: type[ReadModel], generation: int) -> str:
        return identifier(f"{self.schema}_{view_class.name.replace('-', '_')}"
                          f"_v{view_class.version}_g{generation}")

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """A dedicated autocommit connection (advisory locks live as long as it)."""
        import psycopg
        kwargs = dict(self._catalog.pool.kwargs)  # type: ignore[arg-type]
        kwargs.pop("row_factory", None)
        with psycopg.connect(autocommit=True, connect_timeout=int(
                float(self.env.get("POSTGRES_CONNECT_TIMEOUT") or 5)), **kwargs) as conn:
            yield conn

    @contextlib.contextmanager
    def _creating(self) -> Iterator[Any]:
        with self._session() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"outcomes-create:{self.schema}"),))
            yield conn

    def create_catalog(self) -> None:
        """The catalog table (idempotent; ``outcomes db init`` and ``open(create=True)``)."""
        from psycopg import sql
        with self._creating() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.schema)))
            conn.execute(sql.SQL(CATALOG_TABLE.replace(CATALOG, "{}.{}")).format(
                sql.Identifier(self.schema), sql.Identifier(CATALOG)))
        self._catalog_ready = True

    def open(self, view_class: type[ReadModel], generation: int, *, create: bool) -> ReadModel:
        from psycopg import sql
        schema = self.generation_schema(view_class, generation)
        view = view_class.on_postgres()(
            postgres_datastore(self.env, schema).share(self._catalog),
            tracking_table_name="tracking")
        if create:
            if not self._catalog_ready:
                self.create_catalog()
            with self._creating() as conn:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(schema)))
                view.create_table()
        return view

    def live(self, view_class: type[ReadModel]) -> int:
        from psycopg import sql
        with self._catalog.transaction(commit=False) as cursor:
            cursor.execute(sql.SQL("SELECT generation FROM {}.{} WHERE name = %s AND version = %s")
                           .format(sql.Identifier(self.schema), sql.Identifier(CATALOG)),
                           (view_class.name, view_class.version))
            row = cursor.fetchone()
        return int(row["generation"]) if row else 1

    def switch(self, view_class: type[ReadModel], generation: int) -> None:
        from psycopg import sql
        with self._catalog.transaction(commit=True) as cursor:
            cursor.execute(sql.SQL(
                "INSERT INTO {}.{} VALUES (%s, %s, %s) ON CONFLICT (name, version) DO UPDATE "
                "SET generation = excluded.generation").format(
                    sql.Identifier(self.schema), sql.Identifier(CATALOG)),
                (view_class.name, view_class.version, generation))

    def generations(self, view_class: type[ReadModel]) -> list[int]:
        prefix = self.generation_schema(view_class, 1)[:-1]
        with self._catalog.transaction(commit=False) as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                           (prefix,))
            names = [row["nspname"] for row in cursor.fetchall()]
        return sorted(int(n[len(prefix):]) for n in names if n[len(prefix):].isdigit())

    def drop(self, view_class: type[ReadModel], generation: int) -> None:
        from psycopg import sql
        with self._catalog.transaction(commit=True) as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.generation_schema(view_class, generation))))

    @contextlib.contextmanager
    def runner_lock(self, name: str, stop: threading.Event, poll: float = 1.0,
                    waiting: Callable[[], None] | None = None) -> Iterator[bool]:
        key = lock_key(f"outcomes-runner:{self.schema}:{name}")
        with self._session() as conn:
            def take() -> bool:
                return bool(conn.execute("SELECT pg_try_advisory_lock(%s)",
                                         (key,)).fetchone()[0])

            if not wait_for_lock(take, stop, poll, waiting):
                yield False
                return
            try:
                yield True
            finally:
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def close(self) -> None:
        self._catalog.close()


def wait_for_lock(take: Callable[[], bool], stop: threading.Event, poll: float,
                  waiting: Callable[[], None] | None) -> bool:
    """Try ``take()`` (a non-blocking lock attempt) every ``poll`` seconds until it succeeds
    (True) or ``stop`` is set (False); ``waiting`` is called once, when the first try fails."""
    if take():
        return True
    if waiting is not None:
        waiting()
    while not stop.wait(poll):
        if take():
            return True
    return False


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.1)


def view_store_for(settings: Any) -> ViewStore:
    """The view store the settings describe (``Settings.view_store``): PostgreSQL when
    ``settings.store`` is "postgres" (the write model's ``POSTGRES_*`` environment and
    ``postgres_schema``), else SQLite files in ``settings.views_folder()`` (None: memory)."""
    if settings.store == "postgres":
        return PostgresViewStore(dict(settings.eventsourcing_env("outcomes")),
                                 settings.postgres_schema)
    return SQLiteViewStore(settings.views_folder())
