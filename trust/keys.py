"""Per-patient data keys, wrapped by the master key, in each event store's own database.

A ``KeyTable`` holds, for one event store (its table prefix is the application's name, as the
library names ``<name>_events``):

* ``<name>_keys``: one row per key: ``key_id`` (random hex), ``kind`` (``patient``, ``system``,
  ``index``, ``check``), ``wrapped`` (the 32-byte AES-256 data key wrapped with the master key by
  AES key wrap, RFC 3394 / NIST SP 800-38F, ``cryptography.hazmat.primitives.keywrap``; NULL once
  erased), ``created_at``, ``erased_at`` (a tombstone: the row stays, the key is gone).
* ``<name>_key_patients``: HMAC-SHA256(index key, patient_ref) -> key ids. The index key is
  random, wrapped by the master key and kept in the table (kind ``index``), so a rotation of the
  master key leaves the index unchanged; patient_ref itself is never stored.
* ``<name>_key_episodes``: episode id -> key id (later events of an episode find their key).

The row ``check`` holds HMAC-SHA256(master key, CHECK_LABEL), first 16 bytes: a wrong master key
is refused when the table is opened (``KeyTableRefused``, one line), and ``check_id`` names the
key in ``outcomes keys status`` without revealing it.

Where: SQLite, the store's own file (erasure runs with ``PRAGMA secure_delete = ON`` and
truncates the WAL afterwards); PostgreSQL, the settings' schema (tables created by ``outcomes db
init``, refused when missing); memory, a private in-memory SQLite database (lost at exit, like
the in-memory event store). Unwrapped keys are cached in memory; another process learns of an
erasure within ``recheck_seconds`` (ADR 0023).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

KEY_BYTES = 32  # AES-256 data keys and master key
CHECK_LABEL = b"outcome-ledger master-key check v1"
SYSTEM_KEY_ID = "0" * 32  # the store's system key (non-episode aggregates); others are random


class KeyTableRefused(Exception):
    """The key table cannot be used: missing on PostgreSQL (run ``outcomes db init``), or the
    master key is not the one its keys are wrapped with. The message is one line, no secret."""


class KeyErased(LookupError):
    """The data key asked for was destroyed (crypto-shredded)."""


def check_id(master: bytes) -> str:
    """The master key's public check id: hex of the first 8 bytes of HMAC-SHA256(master,
    CHECK_LABEL) (what ``keys status`` prints; reveals nothing of the key)."""
    return hmac.new(master, CHECK_LABEL, hashlib.sha256).digest()[:8].hex()


def _check_value(master: bytes) -> bytes:
    return hmac.new(master, CHECK_LABEL, hashlib.sha256).digest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class KeyStatus:
    """Counts for ``outcomes keys status``: patient keys (live and erased), and the check id of
    the master key the table is wrapped with."""

    patient_keys: int
    erased: int
    check_id: str


class _Sql:
    """Transactions on one of three databases, statements written with ``?`` placeholders and
    ``{keys}``/``{patients}``/``{episodes}`` for the table names."""

    def __init__(self, prefix: str, *, datastore: Any = None, kind: str = "memory") -> None:
        self.kind, self.datastore = kind, datastore
        self.names = {"keys": f"{prefix}_keys", "patients": f"{prefix}_key_patients",
                      "episodes": f"{prefix}_key_episodes"}
        if kind == "postgres":
            from psycopg import sql
            schema = datastore.schema
            self.tables = {k: sql.Identifier(schema, v).as_string(None)
                           for k, v in self.names.items()}
        else:
            self.tables = dict(self.names)
        self._memory: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if kind == "memory":
            self._memory = sqlite3.connect(":memory:", check_same_thread=False,
                                           isolation_level=None)
            self._memory.row_factory = sqlite3.Row

    def statement(self, text: str) -> str:
        text = text.format(**self.tables)
        return text.replace("?", "%s") if self.kind == "postgres" else text

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Any]:
        """A cursor in one transaction (committed when ``commit`` and no exception)."""
        if self._memory is not None:
            with self._lock:
                self._memory.execute("BEGIN")
                try:
                    yield self._memory.cursor()
                except BaseException:
                    self._memory.execute("ROLLBACK")
                    raise
                self._memory.execute("COMMIT" if commit else "ROLLBACK")
            return
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def execute(self, cursor: Any, text: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(self.statement(text), tuple(params))

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()


DDL = (
    "CREATE TABLE IF NOT EXISTS {keys} (key_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "wrapped BLOB, created_at TEXT NOT NULL, erased_at TEXT)",
    "CREATE TABLE IF NOT EXISTS {patients} (patient_index TEXT NOT NULL, key_id TEXT NOT NULL, "
    "PRIMARY KEY (patient_index, key_id))",
    "CREATE TABLE IF NOT EXISTS {episodes} (episode_id TEXT PRIMARY KEY, key_id TEXT NOT NULL)",
)


class KeyTable:
    """The data keys of one event store (see the module's docstring). Open with ``open``.

    ``master``: the 32-byte master key. Data keys are returned raw (32 bytes) for
    ``eventsourcing.cryptography.AESCipher``; nothing here logs or raises with key material."""

    recheck_seconds = 1.0  # how stale this process's view of erasures may be (ADR 0023)

    def __init__(self, sql: _Sql, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise ValueError("the master key is 32 bytes")
        self.sql, self._master = sql, master
        self._cache: dict[str, bytes] = {}  # key id -> data key
        self._episodes: dict[str, str] = {}  # episode id -> key id
        self._patients: dict[str, str] = {}  # patient index -> live key id
        self._system: str | None = None
        self._index_key: bytes | None = None
        self._erased_seen: int | None = None
        self._checked_at = 0.0
        self._lock = threading.RLock()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, prefix: str, master: bytes, *, datastore: Any = None, kind: str = "memory",
             create: bool = True) -> KeyTable:
        """The key table ``<prefix>_keys`` (and its two index tables) in ``datastore``
        (``kind``: ``sqlite``, ``postgres`` or ``memory``; memory needs no datastore). Creates
        the tables when ``create``; otherwise (PostgreSQL without ``CREATE_TABLE``) raises
        KeyTableRefused when they are missing. Raises KeyTableRefused for a wrong master key."""
        table = cls(_Sql(prefix.lower(), datastore=datastore, kind=kind), master)
        if create:
            table.create_tables()
        elif not table.exists():
            raise KeyTableRefused(
                f"the key table {table.sql.names['keys']} does not exist: run `outcomes db "
                "init` with OUTCOMES_CIPHER_KEY set (and the same OUTCOMES_POSTGRES_* settings)")
        table._check_master()
        return table

    def create_tables(self) -> None:
        """Create the three tables if missing (idempotent)."""
        with self.sql.transaction(commit=True) as cursor:
            for statement in DDL:
                text = statement.replace("BLOB", "BYTEA") if self.sql.kind == "postgres" \
                    else statement
                self.sql.execute(cursor, text)

    def exists(self) -> bool:
        """Whether the keys table exists (PostgreSQL: in the datastore's schema)."""
        with self.sql.transaction(commit=False) as cursor:
            if self.sql.kind == "postgres":
                cursor.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                               "AND table_name = %s",
                               (self.sql.datastore.schema, self.sql.names["keys"]))
            else:
                cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (self.sql.names["keys"],))
            return cursor.fetchone() is not None

    def _check_master(self) -> None:
        expected = _check_value(self._master)
        with self.sql.transaction(commit=True) as cursor:
            self.sql.execute(cursor, "INSERT INTO {keys} (key_id, kind, wrapped, created_at) "
                             "VALUES ('check', 'check', ?, ?) ON CONFLICT (key_id) DO NOTHING",
                             (expected, _now()))
            self.sql.execute(cursor, "SELECT wrapped FROM {keys} WHERE key_id = 'check'")
            found = bytes(cursor.fetchone()["wrapped"])
        if not hmac.compare_digest(found, expected):
            raise KeyTableRefused(
                f"OUTCOMES_CIPHER_KEY is not the master key of the {self.sql.names['keys']} "
                f"table (its check id is {found[:8].hex()}, this key's {check_id(self._master)})")

    def close(self) -> None:
        """Forget the cached keys (and close a memory table's database)."""
        with self._lock:
            self._cache.clear()
        self.sql.close()

    # -- keys --------------------------------------------------------------------------------

    @property
    def check_id(self) -> str:
        return check_id(self._master)

    def _fresh(self) -> None:
        """Drop the cached keys when another process erased one (checked at most every
        ``recheck_seconds``): one COUNT query."""
        now = time.monotonic()
        if now - self._checked_at < self.recheck_seconds:
            return
        with self.sql.transaction(commit=False) as cursor:
            self.sql.execute(cursor, "SELECT COUNT(*) AS n FROM {keys} WHERE erased_at IS NOT NULL")
            erased = int(cursor.fetchone()["n"])
        with self._lock:
            if self._erased_seen is not None and erased != self._erased_seen:
                self._cache.clear()
                self._patients.clear()
            self._erased_seen, self._checked_at = erased, now

    def _new_key(self, cursor: Any, kind: str, key_id: str | None = None) -> tuple[str, bytes]:
        key_id = key_id or secrets.token_hex(16)
        key = secrets.token_bytes(KEY_BYTES)
        self.sql.execute(cursor, "INSERT INTO {keys} (key_id, kind, wrapped, created_at) VALUES "
                         "(?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
                         (key_id, kind, aes_key_wrap(self._master, key), _now()))
        return key_id, key

    def _load(self, cursor: Any, key_id: str) -> bytes | None:
        self.sql.execute(cursor, "SELECT wrapped FROM {keys} WHERE key_id = ?", (key_id,))
        row = cursor.fetchone()
        if row is None or row["wrapped"] is None:
            return None
        try:
            return aes_key_unwrap(self._master, bytes(row["wrapped"]))
        except InvalidUnwrap:
            raise KeyTableRefused(f"key {key_id} does not unwrap with OUTCOMES_CIPHER_KEY "
                                  "(was the master key rotated? restart with the new key)"
                                  ) from None

    def data_key(self, key_id: str) -> bytes:
        """The data key ``key_id`` (cached). Raises KeyErased when it was destroyed or never
        existed."""
        self._fresh()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        with self.sql.transaction(commit=False) as cursor:
            key = self._load(cursor, key_id)
        if key is None:
            raise KeyErased(key_id)
        with self._lock:
            self._cache[key_id] = key
        return key

    def system_key(self) -> str:
        """The id of the store's system key (non-episode aggregates), created on first use."""
        if self._system is None:
            with self.sql.transaction(commit=True) as cursor:
                self._new_key(cursor, "system", SYSTEM_KEY_ID)
            self._system = SYSTEM_KEY_ID
        return self._system

    def index_key(self) -> bytes:
        """The patient-index HMAC key (random, wrapped by the master key, created on first
        use; a rotation re-wraps it, so the index stays valid)."""
        if self._index_key is None:
            with self.sql.transaction(commit=True) as cursor:
                self._new_key(cursor, "index", "index")
                key = self._load(cursor, "index")
            assert key is not None, "the index key is never erased"
            self._index_key = key
        return self._index_key

    def patient_index(self, patient_ref: str) -> str:
        """HMAC-SHA256(index key, patient_ref), hex: how a patient is found without storing
        patient_ref."""
        return hmac.new(self.index_key(), patient_ref.encode(), hashlib.sha256).hexdigest()

    def key_for_episode(self, episode_id: str) -> str | None:
        """The key id of the episode's events (None: the episode has no key; opened before
        encryption was on)."""
        with self._lock:
            if episode_id in self._episodes:
                return self._episodes[episode_id]
        with self.sql.transaction(commit=False) as cursor:
            self.sql.execute(cursor, "SELECT key_id FROM {episodes} WHERE episode_id = ?",
                             (episode_id,))
            row = cursor.fetchone()
        if row is None:
            return None
        with self._lock:
            self._episodes[episode_id] = row["key_id"]
        return str(row["key_id"])

    def episode_erased(self, episode_id: str) -> bool:
        """Whether the episode's key was destroyed (False for an episode without a key)."""
        key_id = self.key_for_episode(episode_id)
        if key_id is None:
            return False
        try:
            self.data_key(key_id)
        except KeyErased:
            return True
        return False

    def link_episodes(self, episode_ids: Sequence[str], key_id: str) -> None:
        """Link episodes that have no key yet (opened before encryption was on) to ``key_id``,
        so that they count as erased with it."""
        with self.sql.transaction(commit=True) as cursor:
            for episode_id in episode_ids:
                self.sql.execute(cursor, "INSERT INTO {episodes} VALUES (?, ?) ON CONFLICT "
                                 "(episode_id) DO NOTHING", (episode_id, key_id))
        with self._lock:
            for episode_id in episode_ids:
                self._episodes.pop(episode_id, None)

    def new_patient_key(self, patient_ref: str) -> str:
        """A new key for the patient (indexed), e.g. to stand for plaintext episodes that an
        erasure must mark."""
        index = self.patient_index(patient_ref)
        with self.sql.transaction(commit=True) as cursor:
            key_id, _key = self._new_key(cursor, "patient")
            self.sql.execute(cursor, "INSERT INTO {patients} VALUES (?, ?)", (index, key_id))
        return key_id

    def key_for_new_episode(self, patient_ref: str, episode_id: str) -> str:
        """The key id for a patient's episode: the patient's live key (a new one when the
        patient has none, e.g. after an erasure), linked to the episode; committed before any
        event is encrypted with it (an orphan key after a failed append is harmless). An
        episode already linked keeps its key."""
        known = self.key_for_episode(episode_id)
        if known is not None:
            return known
        self._fresh()
        index = self.patient_index(patient_ref)
        with self._lock:
            live = self._patients.get(index)
        with self.sql.transaction(commit=True) as cursor:
            if live is None:
                self.sql.execute(cursor, "SELECT p.key_id AS key_id FROM {patients} p JOIN {keys} k "
                                 "ON k.key_id = p.key_id WHERE p.patient_index = ? AND "
                                 "k.erased_at IS NULL ORDER BY k.created_at DESC LIMIT 1",
                                 (index,))
                row = cursor.fetchone()
                if row is not None:
                    live = str(row["key_id"])
                else:
                    live, key = self._new_key(cursor, "patient")
                    self.sql.execute(cursor, "INSERT INTO {patients} VALUES (?, ?)", (index, live))
                    with self._lock:
                        self._cache[live] = key
            self.sql.execute(cursor, "INSERT INTO {episodes} VALUES (?, ?) ON CONFLICT "
                             "(episode_id) DO NOTHING", (episode_id, live))
            self.sql.execute(cursor, "SELECT key_id FROM {episodes} WHERE episode_id = ?",
                             (episode_id,))
            linked = str(cursor.fetchone()["key_id"])
        with self._lock:
            self._patients[index] = live
            self._episodes[episode_id] = linked
        return linked

    # -- erasure -----------------------------------------------------------------------------

    def patient_keys(self, patient_ref: str) -> list[tuple[str, str | None]]:
        """(key id, erased_at or None) of every key the patient ever had, oldest first."""
        index = self.patient_index(patient_ref)
        with self.sql.transaction(commit=False) as cursor:
            self.sql.execute(cursor, "SELECT k.key_id AS key_id, k.erased_at AS erased_at FROM "
                             "{patients} p JOIN {keys} k ON k.key_id = p.key_id WHERE "
                             "p.patient_index = ? ORDER BY k.created_at", (index,))
            return [(str(r["key_id"]), r["erased_at"]) for r in cursor.fetchall()]

    def episodes_of(self, key_ids: Sequence[str]) -> list[str]:
        """The episode ids linked to any of ``key_ids``, sorted."""
        if not key_ids:
            return []
        marks = ", ".join("?" * len(key_ids))
        with self.sql.transaction(commit=False) as cursor:
            self.sql.execute(cursor, f"SELECT episode_id FROM {{episodes}} WHERE key_id IN "
                             f"({marks}) ORDER BY episode_id", list(key_ids))
            return [str(r["episode_id"]) for r in cursor.fetchall()]

    def erase(self, key_ids: Sequence[str], *, at: datetime | None = None) -> list[str]:
        """Destroy the data keys ``key_ids`` (patient keys only): the wrapped key is set to
        NULL and ``erased_at`` to ``at`` (default now), the row kept as a tombstone; on SQLite
        with ``secure_delete`` (the freed bytes are zeroed) and the WAL truncated afterwards.
        Returns the ids destroyed now (already erased ones are left out). Idempotent."""
        moment = (at or datetime.now(UTC)).isoformat(timespec="microseconds")
        destroyed: list[str] = []
        with self.sql.transaction(commit=True) as cursor:
            if self.sql.kind != "postgres":
                cursor.execute("PRAGMA secure_delete = ON")
            for key_id in key_ids:
                self.sql.execute(cursor, "SELECT 1 AS live FROM {keys} WHERE key_id = ? AND "
                                 "kind = 'patient' AND erased_at IS NULL", (key_id,))
                if cursor.fetchone() is None:
                    continue
                self.sql.execute(cursor, "UPDATE {keys} SET wrapped = NULL, erased_at = ? WHERE "
                                 "key_id = ?", (moment, key_id))
                destroyed.append(key_id)
        with self._lock:
            for key_id in key_ids:
                self._cache.pop(key_id, None)
            self._patients.clear()
        if self.sql.kind == "postgres" and destroyed:
            self._vacuum()
        if self.sql.kind == "sqlite" and destroyed:
            with self.sql.datastore.get_connection(commit=True) as connection:
                # outside a transaction: the old page images leave the WAL file
                connection._sqlite_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return destroyed

    def _vacuum(self) -> None:
        """PostgreSQL: VACUUM the keys table, so the old row versions holding the wrapped keys
        are removed (unless an older transaction still sees them; WAL and backups keep them
        until recycled: ADR 0023). A new connection with the pool's options (VACUUM cannot run
        in a transaction)."""
        import psycopg
        from psycopg import sql

        options = {k: v for k, v in dict(self.sql.datastore.pool.kwargs).items()
                   if k != "row_factory"}
        with psycopg.connect(**options, autocommit=True) as connection:
            connection.execute(sql.SQL("VACUUM {}").format(
                sql.Identifier(self.sql.datastore.schema, self.sql.names["keys"])))

    # -- rotation and status -----------------------------------------------------------------

    def rotate(self, new_master: bytes) -> int:
        """Re-wrap every live key (data keys, system and index key) with ``new_master`` and
        store its check value, in one transaction; events are untouched. Returns how many keys
        were re-wrapped. This table then answers only to ``new_master``."""
        if len(new_master) != KEY_BYTES:
            raise ValueError("the new master key is 32 bytes")
        count = 0
        with self.sql.transaction(commit=True) as cursor:
            self.sql.execute(cursor, "SELECT key_id, wrapped FROM {keys} WHERE kind != 'check' "
                             "AND wrapped IS NOT NULL ORDER BY key_id")
            rows = [(str(r["key_id"]), bytes(r["wrapped"])) for r in cursor.fetchall()]
            for key_id, wrapped in rows:
                try:
                    key = aes_key_unwrap(self._master, wrapped)
                except InvalidUnwrap:
                    raise KeyTableRefused(f"key {key_id} does not unwrap with "
                                          "OUTCOMES_CIPHER_KEY; nothing rotated") from None
                self.sql.execute(cursor, "UPDATE {keys} SET wrapped = ? WHERE key_id = ?",
                                 (aes_key_wrap(new_master, key), key_id))
                count += 1
            self.sql.execute(cursor, "UPDATE {keys} SET wrapped = ? WHERE key_id = 'check'",
                             (_check_value(new_master),))
        self._master = new_master
        return count

    def status(self) -> KeyStatus:
        """Counts of patient keys and erased ones, and the master key's check id."""
        with self.sql.transaction(commit=False) as cursor:
            self.sql.execute(cursor, "SELECT COUNT(*) AS n, COUNT(erased_at) AS e FROM {keys} "
                             "WHERE kind = 'patient'")
            row = cursor.fetchone()
        return KeyStatus(int(row["n"]), int(row["e"]), self.check_id)
