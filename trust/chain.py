"""The hash chain over every stored event, written in the same transaction as the append.

Each event store gets a chain table beside its events table (SQLite: ``<events table>_chain`` in
the store's file; PostgreSQL: ``<app>_events_chain`` in the settings' schema; memory: a list in
the recorder). One row per event: ``position`` (the notification id), ``prev_position`` (the
position of the link before, 0 for the first), ``event_hash`` = SHA-256 over a length-prefixed
encoding of (previous event_hash, position, prev_position, originator_id, originator_version,
topic, state exactly as stored) and ``content_digest`` (SHA-256 over originator_id, version,
topic, state only: lets ``trust.verify`` tell a row moved to another position from an edited
one). Positions may have gaps (PostgreSQL sequences skip rolled-back values): a link names the
position before it, so gaps are never faults, while a missing, added or changed row is.

The Merkle tree (RFC 6962, ``trust.merkle``) has one leaf per link in position order:
``leaf_hash(position as 8 bytes big-endian || event_hash)``; its size is the number of events.

The recorder subclasses write links inside the library's own write transaction (ADR 0022):
``ChainedSQLiteApplicationRecorder`` (``_insert_events``), ``ChainedPostgresApplicationRecorder``
(after the table lock and the insert, ``_fetch_ids_after_insert_events``) and
``ChainedPOPOApplicationRecorder`` (under the recorder's lock). ``Chain.of(recorder)`` reads.
A store written before the chain existed (events, no link at all) is chained once when its
tables are created (``outcomes db init``, or a SQLite store opening); after that an event
without a link can only have been added behind the application's back ("inserted").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from trust import merkle

GENESIS = bytes(32)  # the "previous hash" of the first link
SQLITE_RECORDER_TOPIC = "trust.chain:ChainedSQLiteApplicationRecorder"
POPO_FACTORY_TOPIC = "trust.chain:ChainedPOPOFactory"
BATCH = 1000


# -- hashing --------------------------------------------------------------------------------------

def _field(value: bytes) -> bytes:
    return len(value).to_bytes(8, "big") + value


def _int(value: int) -> bytes:
    return _field(value.to_bytes(8, "big", signed=True))


def canonical_id(originator_id: Any) -> str:
    """The originator id as hashed: a UUID's canonical text (SQLite stores 32 hex digits,
    PostgreSQL a uuid), any other id as its text."""
    text = originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)
    try:
        return str(UUID(text))
    except ValueError:
        return text


def content_digest(originator_id: Any, originator_version: int, topic: str,
                   state: bytes) -> bytes:
    """SHA-256 of one event's stored content, wherever it stands (32 bytes)."""
    return hashlib.sha256(
        _field(canonical_id(originator_id).encode()) + _int(originator_version)
        + _field(topic.encode()) + _field(bytes(state))).digest()


def event_hash(prev_hash: bytes, position: int, prev_position: int, originator_id: Any,
               originator_version: int, topic: str, state: bytes) -> bytes:
    """One link's hash (32 bytes): SHA-256 over the length-prefixed previous hash, position,
    previous position, originator id, version, topic and state as stored."""
    return hashlib.sha256(
        _field(prev_hash) + _int(position) + _int(prev_position)
        + _field(canonical_id(originator_id).encode()) + _int(originator_version)
        + _field(topic.encode()) + _field(bytes(state))).digest()


def leaf_of(position: int, hash_: bytes) -> bytes:
    """The Merkle leaf hash of one link: RFC 6962 leaf_hash(position (8 bytes) || event_hash)."""
    return merkle.leaf_hash(position.to_bytes(8, "big") + hash_)


@dataclass(frozen=True)
class Link:
    """A chain row as stored."""

    position: int
    prev_position: int
    event_hash: bytes
    content_digest: bytes


@dataclass(frozen=True)
class RawEvent:
    """An events-table row as stored (``state`` the stored bytes, ciphertext when encrypted)."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


def links_for(last: tuple[int, bytes] | None, events: Sequence[RawEvent]) -> list[Link]:
    """The links of ``events`` (position order) after the link ``last`` (position, hash)."""
    prev_position, prev_hash = last if last is not None else (0, GENESIS)
    links = []
    for e in events:
        hash_ = event_hash(prev_hash, e.position, prev_position, e.originator_id,
                           e.originator_version, e.topic, e.state)
        links.append(Link(e.position, prev_position, hash_,
                          content_digest(e.originator_id, e.originator_version, e.topic, e.state)))
        prev_position, prev_hash = e.position, hash_
    return links


def chain_in_batches(fetch: Callable[[int], list[RawEvent]],
                     write: Callable[[list[Link]], None]) -> int:
    """Chain a whole backlog from the first link on: ``fetch(after)`` gives the next at most
    ``BATCH`` events after position ``after`` in position order ([] at the end), ``write``
    stores their links. Returns how many events were chained."""
    done = 0
    last: tuple[int, bytes] | None = None
    after = -(2**62)
    while batch := fetch(after):
        links = links_for(last, batch)
        write(links)
        done += len(links)
        last, after = (links[-1].position, links[-1].event_hash), batch[-1].position
    return done


def _raw(ids: Sequence[int], stored: Sequence[StoredEvent]) -> list[RawEvent]:
    return [RawEvent(i, canonical_id(s.originator_id), s.originator_version, s.topic,
                     bytes(s.state)) for i, s in zip(ids, stored, strict=True)]


# -- SQLite ---------------------------------------------------------------------------------------

class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder that also writes each event's link into
    ``<events table>_chain`` within the append's own write transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)

    @property
    def chain_table_name(self) -> str:
        return f"{self.events_table_name}_chain"

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} (position INTEGER PRIMARY "
                "KEY, prev_position INTEGER NOT NULL, event_hash BLOB NOT NULL, "
                "content_digest BLOB NOT NULL)"]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:  # the inserts hold the write lock: the last link cannot move under us
            c.execute(f"SELECT position, event_hash FROM {self.chain_table_name} "
                      "ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            last = (row["position"], bytes(row["event_hash"])) if row else None
            self._write_links(c, links_for(last, _raw(ids, stored_events)))
        return ids

    def _write_links(self, c: SQLiteCursor, links: Sequence[Link]) -> None:
        c.executemany(f"INSERT INTO {self.chain_table_name} VALUES (?, ?, ?, ?)",
                      [(k.position, k.prev_position, k.event_hash, k.content_digest)
                       for k in links])

    def create_table(self) -> None:
        """The library's tables, the chain table, then the backlog chained (once)."""
        super().create_table()
        self.chain_backlog()

    def chain_backlog(self) -> int:
        """Chain the events of a store that has events but no link at all (written before the
        chain existed); returns how many were chained (0 when the chain has any link)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT EXISTS (SELECT 1 FROM {self.chain_table_name}) AS linked, "
                      f"EXISTS (SELECT 1 FROM {self.events_table_name}) AS stored")
            row = c.fetchone()
            if row["linked"] or not row["stored"]:
                return 0
        with self.datastore.transaction(commit=True) as c:
            # a write first: the transaction takes the write lock before it reads
            c.execute(f"DELETE FROM {self.chain_table_name} WHERE position < -1")
            c.execute(f"SELECT 1 FROM {self.chain_table_name} LIMIT 1")
            if c.fetchone():
                return 0

            def fetch(after: int) -> list[RawEvent]:
                c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                          f"{self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                          (after, BATCH))
                return [RawEvent(r[0], canonical_id(r[1]), r[2], r[3], bytes(r[4]))
                        for r in c.fetchall()]

            return chain_in_batches(fetch, lambda links: self._write_links(c, links))


# -- PostgreSQL -----------------------------------------------------------------------------------

class _RollBack(BaseException):
    """Carries ``error`` out of the library's PostgreSQL transaction block, which catches every
    ``Exception`` (and so would commit); a ``BaseException`` makes the block roll back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL application recorder that also writes each event's link into
    ``<events table>_chain`` (same schema) in the append's transaction, after the library has
    locked the events table (EXCLUSIVE: one appender at a time) and inserted the events."""

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events"):
        from psycopg.sql import SQL, Identifier

        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        chain = Identifier(self.datastore.schema, self.chain_table_name)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY, prev_position bigint "
            "NOT NULL, event_hash bytea NOT NULL, content_digest bytea NOT NULL)").format(chain))
        self.select_last_link_statement = SQL(
            "SELECT position, event_hash FROM {} ORDER BY position DESC LIMIT 1").format(chain)
        self.insert_links_statement = SQL(
            "INSERT INTO {} (position, prev_position, event_hash, content_digest) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[]) "
            "RETURNING position").format(chain)

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        """The library's append; an error raised while linking leaves nothing stored (the
        library's transaction block catches ``Exception`` and commits before re-raising it, so
        the error is carried out of the block as ``_RollBack`` and raised again here)."""
        try:
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        except _RollBack as rollback:
            raise rollback.error from None
        return ids

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        try:
            ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            if ids:
                curs.execute(self.select_last_link_statement)
                row = curs.fetchone()
                last = (row["position"], bytes(row["event_hash"])) if row else None
                self._write_links(curs, links_for(last, _raw(ids, stored_events)))
        except Exception as error:
            raise _RollBack(error) from error
        return ids

    def _write_links(self, curs: Any, links: Sequence[Link]) -> None:
        curs.execute(self.insert_links_statement, (
            [k.position for k in links], [k.prev_position for k in links],
            [k.event_hash for k in links], [k.content_digest for k in links]))
        curs.fetchall()  # in pipeline mode: surfaces a failure here, inside the library's try

    def create_table(self) -> None:
        """The library's tables, the chain table, then the backlog chained (once)."""
        super().create_table()
        self.chain_backlog()

    def chain_backlog(self) -> int:
        """Chain the events of a store that has events but no link at all, under the events
        table's lock (``outcomes db init``); returns how many were chained."""
        from psycopg.sql import SQL, Identifier

        events = Identifier(self.datastore.schema, self.events_table_name)
        chain = Identifier(self.datastore.schema, self.chain_table_name)
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.lock_table_statements:
                curs.execute(statement)
            curs.execute(SQL("SELECT EXISTS (SELECT 1 FROM {}) AS linked").format(chain))
            row = curs.fetchone()
            if row is None or row["linked"]:
                return 0

            def fetch(after: int) -> list[RawEvent]:
                curs.execute(SQL(
                    "SELECT notification_id, originator_id, originator_version, topic, state "
                    "FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s").format(
                        events), (after, BATCH))
                return [RawEvent(r["notification_id"], canonical_id(r["originator_id"]),
                                 r["originator_version"], r["topic"], bytes(r["state"]))
                        for r in curs.fetchall()]

            return chain_in_batches(fetch, lambda links: self._write_links(curs, links))


# -- memory ---------------------------------------------------------------------------------------

class ChainedPOPOApplicationRecorder(POPOApplicationRecorder):
    """The library's in-memory application recorder with links kept beside the events, both
    appended under the recorder's lock."""

    def __init__(self) -> None:
        super().__init__()
        self._links: list[Link] = []

    def _update_table(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        ids = super()._update_table(stored_events, **kwargs)
        if ids:
            last = (self._links[-1].position, self._links[-1].event_hash) if self._links else None
            self._links.extend(links_for(last, _raw(ids, stored_events)))
        return ids


class ChainedPOPOFactory(POPOFactory):
    """``eventsourcing.popo``'s factory whose application recorder is chained
    (``PERSISTENCE_MODULE=trust.chain:ChainedPOPOFactory``)."""

    def application_recorder(self) -> ApplicationRecorder:
        return ChainedPOPOApplicationRecorder()


# -- reading --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TreeHead:
    """A Merkle tree head: ``size`` (events), ``root`` (32 bytes), ``last_position`` (0 when
    empty)."""

    size: int
    root: bytes
    last_position: int = 0


@dataclass(frozen=True)
class ChainEntry:
    """One event's place in the chain: ``index`` is its 0-based Merkle leaf index."""

    position: int
    index: int
    event_hash: bytes
    prev_position: int


class NotChained(TypeError):
    """The recorder writes no chain (built without ``Settings.eventsourcing_env``)."""


class Chain:
    """The read side of one event store's chain: links, events and the Merkle tree. Reads
    only (short read transactions, no write lock); never needs a cipher key."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    @classmethod
    def of(cls, recorder: Any) -> Chain:
        """The chain of ``recorder``; raises NotChained for a recorder that keeps none."""
        for klass in (_SQLiteChain, _PostgresChain, _MemoryChain):
            if isinstance(recorder, klass.recorder_class):
                return klass(recorder)
        raise NotChained(f"{type(recorder).__name__} keeps no hash chain")

    # implemented by each store: pages in position order after ``after``
    def link_page(self, after: int, limit: int) -> list[Link]:
        raise NotImplementedError

    def event_page(self, after: int, limit: int) -> list[RawEvent]:
        raise NotImplementedError

    def links(self) -> Iterator[Link]:
        """Every link in position order (read in pages)."""
        after = -(2**62)
        while page := self.link_page(after, BATCH):
            yield from page
            after = page[-1].position

    def events(self, after: int = -(2**62)) -> Iterator[RawEvent]:
        """Every stored event after position ``after`` in position order (read in pages)."""
        while page := self.event_page(after, BATCH):
            yield from page
            after = page[-1].position

    def leaves(self, upto_size: int | None = None) -> list[bytes]:
        """The Merkle leaf hashes in position order, the first ``upto_size`` only if given."""
        found: list[bytes] = []
        for link in self.links():
            if upto_size is not None and len(found) >= upto_size:
                break
            found.append(leaf_of(link.position, link.event_hash))
        return found

    def head(self) -> TreeHead:
        """The current tree head over every link."""
        leaves, last = [], 0
        for link in self.links():
            leaves.append(leaf_of(link.position, link.event_hash))
            last = link.position
        return TreeHead(len(leaves), merkle.root(leaves), last)

    def entry(self, position: int) -> ChainEntry | None:
        """The link at ``position`` with its leaf index, None when no link is there."""
        for index, link in enumerate(self.links()):
            if link.position == position:
                return ChainEntry(position, index, link.event_hash, link.prev_position)
            if link.position > position:
                return None
        return None


class _SQLiteChain(Chain):
    recorder_class = ChainedSQLiteApplicationRecorder

    def link_page(self, after: int, limit: int) -> list[Link]:
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position, prev_position, event_hash, content_digest FROM "
                      f"{self.recorder.chain_table_name} WHERE position > ? ORDER BY position "
                      "LIMIT ?", (after, limit))
            return [Link(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in c.fetchall()]

    def event_page(self, after: int, limit: int) -> list[RawEvent]:
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                      f"{self.recorder.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                      (after, limit))
            return [RawEvent(r[0], canonical_id(r[1]), r[2], r[3], bytes(r[4]))
                    for r in c.fetchall()]


class _PostgresChain(Chain):
    recorder_class = ChainedPostgresApplicationRecorder

    def _select(self, statement: Any, params: tuple[Any, ...]) -> list[Any]:
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return list(curs.fetchall())

    def link_page(self, after: int, limit: int) -> list[Link]:
        from psycopg.sql import SQL, Identifier

        rows = self._select(SQL(
            "SELECT position, prev_position, event_hash, content_digest FROM {} "
            "WHERE position > %s ORDER BY position LIMIT %s").format(
                Identifier(self.recorder.datastore.schema, self.recorder.chain_table_name)),
            (after, limit))
        return [Link(r["position"], r["prev_position"], bytes(r["event_hash"]),
                     bytes(r["content_digest"])) for r in rows]

    def event_page(self, after: int, limit: int) -> list[RawEvent]:
        from psycopg.sql import SQL, Identifier

        rows = self._select(SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s").format(
                Identifier(self.recorder.datastore.schema, self.recorder.events_table_name)),
            (after, limit))
        return [RawEvent(r["notification_id"], canonical_id(r["originator_id"]),
                         r["originator_version"], r["topic"], bytes(r["state"])) for r in rows]


class _MemoryChain(Chain):
    recorder_class = ChainedPOPOApplicationRecorder

    def link_page(self, after: int, limit: int) -> list[Link]:
        with self.recorder._database_lock:
            return [k for k in self.recorder._links if k.position > after][:limit]

    def event_page(self, after: int, limit: int) -> list[RawEvent]:
        with self.recorder._database_lock:
            stored = self.recorder._stored_events
            start = max(after, 0)
            return _raw(range(start + 1, min(start + limit, len(stored)) + 1),
                        stored[start:start + limit])
