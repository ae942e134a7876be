"""``outcomes backup DEST``: a consistent online copy of the event stores, with a manifest
(issue 11, ADR 0024).

What is copied: each event store (``bootstrap.EVENT_STORES``: its events, hash chain and, with
encryption on, its wrapped-key table) and the shadow-run results. Read models are not copied:
``outcomes restore`` rebuilds them from the events. Keys are never copied (``KEYS_NOTE``).

- SQLite: each file through SQLite's online backup API (``sqlite3.Connection.backup`` in one
  step: one read transaction, so the copy is the file as of one moment while the service goes on
  writing, WAL mode letting writers proceed), then switched to a single-file journal mode so the
  copy is one self-contained file per store.
- PostgreSQL: ``pg_dump --format=custom`` of the settings' schema's tables other than the read
  models' catalog (``trust.pgdump``), reading the snapshot of a REPEATABLE READ transaction that
  also computes the manifest's heads, so the dump and the manifest see the same rows.

DEST is a new folder (an existing empty one is accepted), mode 0700, holding the copies, the
latest checkpoint (``trust.checkpoints.latest_checkpoint``, taken before the copy so it covers no
more than the copy) and ``manifest.json``: time (UTC), store kind, per event store its last
position, number of events, the chain's tree size and root (``trust.chain.Chain.of(recorder)
.head()`` read from the copy itself), the checkpoint, the tool's version, SHA-256 and size of
every file, and the keys note.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trust import pgdump
from trust.files import create_private, private_dir, private_file

if TYPE_CHECKING:
    from bootstrap import Settings

MANIFEST = "manifest.json"
FORMAT = 1  # manifest.json's format; ``outcomes restore`` refuses another
DUMP_FILE = "ledger.dump"  # PostgreSQL: the pg_dump archive
RESULTS = "shadow-runs"  # the shadow-run results' name in the manifest (SQLite: rescorings.sqlite)
RESULTS_FILE = "rescorings.sqlite"
CATALOG = "view_generations"  # the read models' catalog (projections.storage): not copied
KEYS_NOTE = (
    "Keys are NOT in this backup; back them up separately, each apart from the backups: the "
    "master key (OUTCOMES_CIPHER_KEY; without it encrypted events cannot be read), the checkpoint "
    "signing key (OUTCOMES_CHECKPOINT_KEY_FILE, default <store folder>/checkpoint-signing.key; "
    "without it old checkpoints cannot be verified against new ones) and the pseudonym key "
    "(OUTCOMES_PSEUDONYM_KEY or <store folder>/pseudonym.key; without it a re-import gives "
    "patients new patient_refs). Keep the erasure log (OUTCOMES_ERASURE_LOG, default <store "
    "folder>/erasures.jsonl) current off this machine too: `outcomes restore` re-applies it, so "
    "that patients erased after this backup stay erased.")


class BackupError(Exception):
    """A backup or a restore that cannot be done (one line naming why and what to do)."""


@dataclass(frozen=True)
class StoreHead:
    """One event store as copied: ``last_position`` (0 when empty), ``events`` (rows),
    ``tree_size`` and ``root`` (lower-case hex) of its chain's Merkle tree head."""

    last_position: int
    events: int
    tree_size: int
    root: str


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: its folder, its manifest (as written) and the seconds it took."""

    dest: Path
    manifest: dict[str, Any]
    seconds: float


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, lower-case hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tool_version() -> str:
    """The installed outcome-ledger version (what ``outcomes --version`` prints)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outcome-ledger")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "unknown"


def sqlite_store_path(settings: Settings, name: str) -> Path:
    """The SQLite file of event store ``name`` under ``settings``."""
    return Path(settings.eventsourcing_env(name)["SQLITE_DBNAME"])


def events_table(name: str) -> str:
    """The PostgreSQL events table of event store ``name`` (``<app name>_events``)."""
    from bootstrap import EVENT_STORES

    return f"{EVENT_STORES[name].name.lower()}_events"


def backup(settings: Settings, dest: Path) -> BackupResult:
    """Copy the configured store into the new folder ``dest`` (see the module docstring) while
    the service may go on writing. Raises BackupError: the memory store, ``dest`` an existing
    file or non-empty folder, no store yet, or (PostgreSQL) ``pg_dump`` missing, older than the
    server, or failing. A failed backup leaves no partial copy behind."""
    started = time.monotonic()
    if settings.store == "memory":
        raise BackupError("OUTCOMES_STORE=memory keeps nothing to back up (it is lost at exit)")
    made = _new_folder(dest)
    try:
        from trust.checkpoints import latest_checkpoint

        checkpoint = latest_checkpoint(settings)  # before the copy: it covers no more than it
        manifest: dict[str, Any] = {
            "format": FORMAT, "tool": "outcome-ledger", "version": tool_version(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "store": settings.store}
        if settings.store == "sqlite":
            heads, files = _backup_sqlite(settings, dest)
        else:
            heads, files, manifest["postgres"] = _backup_postgres(settings, dest)
        manifest["event_stores"] = {name: asdict(head) for name, head in heads.items()}
        manifest["checkpoint"] = None
        if checkpoint is not None:
            copied = dest / checkpoint.name
            shutil.copyfile(checkpoint, copied)
            private_file(copied)
            manifest["checkpoint"] = checkpoint.name
            files.append(copied)
        manifest["files"] = {path.name: {"sha256": sha256(path), "bytes": path.stat().st_size}
                             for path in files}
        manifest["keys"] = KEYS_NOTE
        target = create_private(dest / MANIFEST)
        target.write_text(json.dumps(manifest, indent=1) + "\n")
    except BaseException:
        _discard(dest, made)
        raise
    return BackupResult(dest, manifest, time.monotonic() - started)


def _new_folder(dest: Path) -> bool:
    """Make ``dest`` (mode 0700); True when it was created here. BackupError when it is a file
    or a folder that holds anything."""
    if dest.exists():
        if not dest.is_dir():
            raise BackupError(f"{dest} is a file: give a new folder")
        if any(dest.iterdir()):
            raise BackupError(f"{dest} is not empty: give a new folder (a backup never "
                              "overwrites another)")
        private_dir(dest)
        return False
    private_dir(dest)
    return True


def _discard(dest: Path, made: bool) -> None:
    if made:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.is_dir():
        for path in dest.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# -- SQLite ---------------------------------------------------------------------------------------

def _backup_sqlite(settings: Settings, dest: Path) -> tuple[dict[str, StoreHead], list[Path]]:
    from bootstrap import EVENT_STORES

    if not sqlite_store_path(settings, "outcomes").exists():
        raise BackupError(f"no store at {settings.sqlite_path}: nothing to back up (check "
                          "OUTCOMES_SQLITE_PATH)")
    heads: dict[str, StoreHead] = {}
    files: list[Path] = []
    for name in EVENT_STORES:
        source = sqlite_store_path(settings, name)
        if not source.exists():  # a store never opened since that event store was added
            continue
        copy = dest / f"{name}.sqlite"
        copy_sqlite(source, copy)
        heads[name] = sqlite_head(copy)
        single_file(copy)
        files.append(copy)
    folder = settings.views_folder()
    results = folder / RESULTS_FILE if folder is not None else None
    if results is not None and results.exists():
        copy_sqlite(results, dest / RESULTS_FILE)
        single_file(dest / RESULTS_FILE)
        files.append(dest / RESULTS_FILE)
    return heads, files


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` into the new file ``target`` (mode 0600) with the
    online backup API in one step (one consistent read of ``source``; writers go on)."""
    create_private(target)
    with _closing(sqlite3.connect(source, timeout=30)) as src, \
            _closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def single_file(path: Path) -> None:
    """Fold a SQLite database's WAL into it and switch it to the rollback journal, so that the
    file alone is the database (what is digested, copied and renamed)."""
    with _closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()


@contextmanager
def _closing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield conn
    finally:
        conn.close()


def sqlite_head(path: Path) -> StoreHead:
    """The head of the SQLite event store file ``path``: its chain's tree head (through the
    chained recorder, ``trust.chain``) and its events' count and last position."""
    from eventsourcing.sqlite import SQLiteDatastore

    from trust.chain import Chain, ChainedSQLiteApplicationRecorder

    datastore = SQLiteDatastore(str(path), lock_timeout=10, pool_size=1, max_overflow=0)
    try:
        recorder = ChainedSQLiteApplicationRecorder(datastore)
        head = Chain.of(recorder).head()
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n, COALESCE(MAX(rowid), 0) AS last FROM "
                           f"{recorder.events_table_name}")
            row = cursor.fetchone()
    finally:
        datastore.close()
    return StoreHead(int(row["last"]), int(row["n"]), head.size, head.root.hex())


# -- PostgreSQL -----------------------------------------------------------------------------------

class _SnapshotDatastore:
    """What ``trust.chain``'s PostgreSQL reader needs of a datastore (``schema``,
    ``get_connection``), answered by one connection whose open REPEATABLE READ transaction holds
    the backup's snapshot: every read sees exactly what ``pg_dump --snapshot`` dumps."""

    originator_id_type = "uuid"
    lock_timeout = 0

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn, self.schema = conn, schema
        self.db_type_names: set[str] = set()

    def register_type_adapters(self) -> None:
        """Nothing to register: the reader selects plain columns."""

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        yield self.conn

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Any]:
        with self.conn.cursor() as cursor:
            yield cursor


def _backup_postgres(settings: Settings, dest: Path
                     ) -> tuple[dict[str, StoreHead], list[Path], dict[str, Any]]:
    from psycopg import IsolationLevel

    from bootstrap import EVENT_STORES

    conn = pgdump.connect(settings)
    try:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        server = int(conn.execute("SHOW server_version_num").fetchone()["server_version_num"])
        pg_dump = pgdump.check_tool("pg_dump", server)
        snapshot = conn.execute("SELECT pg_export_snapshot() AS id").fetchone()["id"]
        tables = schema_tables(conn, settings.postgres_schema)
        heads: dict[str, StoreHead] = {}
        for name in EVENT_STORES:
            if events_table(name) not in tables:
                raise BackupError(f"table {settings.postgres_schema}.{events_table(name)} does "
                                  "not exist: nothing to back up (run `outcomes db init`?)")
            heads[name] = _postgres_head(conn, settings.postgres_schema, name)
        dump = dest / DUMP_FILE
        create_private(dump)
        pgdump.dump(settings, dump, [t for t in tables if t != CATALOG], snapshot)
    except pgdump.ToolError as exc:
        raise BackupError(str(exc)) from None
    finally:
        conn.rollback()
        conn.close()
    about = {"schema": settings.postgres_schema, "server_version_num": server,
             "pg_dump": pg_dump, "tables": [t for t in tables if t != CATALOG]}
    return heads, [dump], about


def schema_tables(conn: Any, schema: str) -> list[str]:
    """The ordinary and partitioned tables of ``schema``, by name."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (schema,))
    return [row["relname"] for row in rows]


def _postgres_head(conn: Any, schema: str, name: str) -> StoreHead:
    from psycopg import sql

    from trust.chain import Chain, ChainedPostgresApplicationRecorder

    table = events_table(name)
    recorder = ChainedPostgresApplicationRecorder(_SnapshotDatastore(conn, schema),
                                                  events_table_name=table)
    head = Chain.of(recorder).head()
    row = conn.execute(sql.SQL(
        "SELECT count(*) AS n, COALESCE(max(notification_id), 0) AS last FROM {}").format(
            sql.Identifier(schema, table))).fetchone()
    return StoreHead(int(row["last"]), int(row["n"]), head.size, head.root.hex())
