"""The machinery every read model shares: a tracked view on SQLite or PostgreSQL, batch
processing, the fingerprint that tells a view built from another store.

A read model is a class of this module's ``ReadModel`` with ``name``, ``version``, ``topics``
(the event topics it reads, filtered in the database), ``tables`` (its DDL, written once for both
stores) and ``apply(event, cursor, position)``. ``on_sqlite()`` / ``on_postgres()`` give the
concrete ``eventsourcing`` tracking recorder (``SQLiteTrackingRecorder`` in its own file, or
``PostgresTrackingRecorder`` in its own schema): one code path, the same statements (``?``
placeholders, rewritten to ``%s`` for psycopg; names resolved by the connection's search_path).
Rows, the tracking position and the fingerprint of the last processed notification (originator
id and version) commit in one transaction; the library's single-row tracking refuses a position
that is not newer, so reprocessing an event is harmless (exactly-once).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from domain.criteria.fold import Observation
from domain.episode import AssessmentState, Episode
from domain.erasure import ErasureCompleted
from domain.rules import EpisodeOutcome
from trust.cipher import ErasedEvent

# Fields every event has that the read models take from the envelope instead of the payload.
ENVELOPE = ("originator_id", "originator_version", "timestamp")


def topics_of(*classes: type) -> tuple[str, ...]:
    """The ``TOPIC`` of every event class nested in ``classes`` (aggregates), sorted."""
    found = set()
    for owner in classes:
        for value in vars(owner).values():
            topic = getattr(value, "TOPIC", None) if isinstance(value, type) else None
            if topic and topic.startswith(f"{vars(owner)['TOPIC']}.") and not topic.endswith(
                    ".Created"):  # Created: declared for explicit topics, never stored
                found.add(topic)
    return tuple(sorted(found))


def one_of(column: str, values: Collection[str]) -> tuple[str, list[str]]:
    """A ``column IN (...)`` clause and its parameters (an empty ``values`` matches nothing)."""
    return f"{column} IN ({', '.join('?' * len(values)) or 'NULL'})", sorted(values)


def to_json(value: Any) -> str:
    """JSON text for a view column: dates and datetimes as ISO strings, UUIDs as strings."""
    return json.dumps(value, default=_default, sort_keys=True, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def utc_text(moment: datetime) -> str:
    """A sortable UTC ISO string (event timestamps are UTC; a query's bound may have any offset).

    A bound within a day of the calendar's ends has no UTC equivalent (OverflowError): it is
    clamped to the first or last representable moment, which orders the same against any event.
    """
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
    return moment.isoformat(timespec="microseconds")


def payload(event: Any) -> dict[str, Any]:
    """The event's own fields (without id, version and timestamp), JSON-ready."""
    data: dict[str, Any] = json.loads(to_json({k: v for k, v in event.__dict__.items()
                                               if k not in ENVELOPE}))
    return data


def assessment_facts(event: Episode.AssessmentRecorded) -> dict[str, Any]:
    """What a read model keeps of a recorded assessment: the Episode's own AssessmentState of it,
    as JSON data (so the rules see the same facts the aggregate holds)."""
    state = AssessmentState(
        event.assessment_id, event.instrument, event.clinical_date, event.administered_at,
        event.items, event.reported_total, event.total, event.severity, list(event.flags),
        event.timestamp, event.recorded_by)
    at = state.administered_at
    return {**vars(state), "administered_on": state.administered_on.isoformat(),
            "administered_at": at.isoformat() if at else None,
            "recorded_at": state.recorded_at.isoformat()}


def assessment_state(facts: Mapping[str, Any]) -> AssessmentState:
    """The AssessmentState that ``assessment_facts`` stored."""
    at = facts["administered_at"]
    return AssessmentState(**{
        **facts, "administered_on": date.fromisoformat(facts["administered_on"]),
        "administered_at": datetime.fromisoformat(at) if at else None,
        "recorded_at": datetime.fromisoformat(facts["recorded_at"])})


def observations(facts: Iterable[Mapping[str, Any]]) -> list[Observation]:
    """The valid (not voided) assessments among ``facts`` as the fold sees them."""
    return [assessment_state(f).observation() for f in facts if not f["voided"]]


def outcome_to_json(outcome: EpisodeOutcome) -> str:
    return to_json(vars(outcome))


def outcome_from_json(text: str) -> EpisodeOutcome:
    """An EpisodeOutcome stored by ``outcome_to_json`` (keys it did not store take defaults)."""
    fields = EpisodeOutcome.__dataclass_fields__
    return EpisodeOutcome(**{k: v for k, v in json.loads(text).items() if k in fields})


FINGERPRINT = ("CREATE TABLE IF NOT EXISTS view_fingerprint (application_name TEXT PRIMARY KEY, "
               "position INTEGER NOT NULL, originator_id TEXT NOT NULL, "
               "originator_version INTEGER NOT NULL)")
_PG_TYPES = ((re.compile(r"\bINTEGER\b"), "BIGINT"), (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'))


def postgres_ddl(statement: str) -> str:
    """A read model's DDL for PostgreSQL: 64-bit integers, and text ordered by code point as on
    SQLite (``COLLATE "C"``: keyset cursors compare ISO timestamps and ids)."""
    for pattern, replacement in _PG_TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


@cache
def postgres_statement(statement: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (our statements hold no literal ``?`` or ``%``)."""
    assert "%" not in statement, statement
    return statement.replace("?", "%s")


class ViewCursor:
    """A cursor over either store's cursor: ``execute(statement, params)`` with ``?``
    placeholders; rows are mappings by column name (``row["episode_id"]``) on both."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor, self.postgres = cursor, postgres

    def execute(self, statement: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        if self.postgres:
            self.cursor.execute(postgres_statement(statement), params)
        else:
            self.cursor.execute(statement, params)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self.cursor.fetchall())

    def fetchmany(self, size: int) -> list[Any]:
        raw = getattr(self.cursor, "sqlite_cursor", self.cursor)
        return list(raw.fetchmany(size))


class ReadModel:
    """Base view: subclasses give ``name``, ``version``, ``topics``, ``tables`` (CREATE
    statements, SQLite syntax that PostgreSQL also accepts) and ``apply(event, cursor,
    position)``, which updates rows for one event (events a read model does not need only
    advance its position). Instantiate ``on_sqlite()`` or ``on_postgres()``."""

    name = "read-model"
    # Bumped when the tables or the stored state change shape: a new version is a new database
    # file (a new schema on PostgreSQL), built from position 0 on first use.
    version = 1
    topics: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    postgres = False
    # PostgreSQL: commit view transactions without waiting for the WAL flush (see ``writing``).
    asynchronous_commit = True
    datastore: Any
    table_migration_identifier: str
    # Given by the concrete recorder (``on_sqlite``/``on_postgres``); declared for the checker.
    _max_tracking_id: Callable[..., int | None]
    _insert_tracking: Callable[..., None]
    create_table: Callable[[], None]

    max_tracking_id: Callable[[str], int | None]
    tracking_table_name: str

    @classmethod
    def on_sqlite(cls) -> Callable[..., ReadModel]:
        """The concrete view on SQLite (a ``SQLiteTrackingRecorder``)."""
        return _concrete(cls, SQLiteTrackingRecorder)

    @classmethod
    def on_postgres(cls) -> Callable[..., ReadModel]:
        """The concrete view on PostgreSQL (a ``PostgresTrackingRecorder``; pass
        ``tracking_table_name``)."""
        return _concrete(cls, _PostgresView)

    def construct_create_table_statements(self) -> list[str]:
        inherited: list[str] = super().construct_create_table_statements()  # type: ignore[misc]
        return [*inherited, *self.tables, FINGERPRINT]

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        raise NotImplementedError

    @contextmanager
    def writing(self) -> Iterator[ViewCursor]:
        """A write transaction. On PostgreSQL without waiting for the WAL flush
        (``synchronous_commit = off``): a crash may lose the last commits of the view, rows and
        tracking together, which are then reprocessed (ADR 0018)."""
        with self.datastore.transaction(commit=True) as cursor:
            if self.postgres and self.asynchronous_commit:
                cursor.execute("SET LOCAL synchronous_commit = off")
            yield ViewCursor(cursor, self.postgres)

    def process(self, application_name: str,
                batch: Sequence[tuple[DomainEventProtocol[Any], int]]) -> int:
        """Apply the events of ``batch`` ((event, position) pairs in position order) that come
        after the tracked position, and record the last one's position and fingerprint, in one
        transaction; returns how many were applied. Raises IntegrityError or OperationalError
        when another process changed the view meanwhile (nothing is applied)."""
        if not batch:
            return 0
        with self.writing() as cursor:
            done = self._max_tracking_id(application_name, cursor.cursor) or 0
            pending = [(event, position) for event, position in batch if position > done]
            for event, position in pending:
                self.apply(event, cursor, position)
            if pending:
                last, position = pending[-1]
                self._insert_tracking(cursor.cursor, Tracking(application_name, position))
                cursor.execute(
                    "INSERT INTO view_fingerprint VALUES (?, ?, ?, ?) ON CONFLICT "
                    "(application_name) DO UPDATE SET position = excluded.position, "
                    "originator_id = excluded.originator_id, "
                    "originator_version = excluded.originator_version",
                    (application_name, position, str(last.originator_id),
                     last.originator_version))
            return len(pending)

    def position(self, application_name: str) -> int:
        """The last processed position (0 before any)."""
        return self.max_tracking_id(application_name) or 0

    def fingerprint(self, application_name: str) -> tuple[int, str, int] | None:
        """(position, originator id, originator version) of the last processed notification,
        None before any (or for a view built before fingerprints were kept)."""
        with self.reading() as cursor:
            cursor.execute("SELECT position, originator_id, originator_version FROM "
                           "view_fingerprint WHERE application_name = ?", (application_name,))
            row = cursor.fetchone()
        return (row["position"], row["originator_id"], row["originator_version"]) if row else None

    def table_names(self) -> list[str]:
        """The names of the read model's own tables (from ``tables``)."""
        return [s.split("EXISTS", 1)[1].split("(", 1)[0].strip()
                for s in self.tables if s.startswith("CREATE TABLE")]

    def clear(self) -> None:
        """Delete every row and the tracking position, in one transaction (in-place rebuild of
        a view opened without a store; ``ReadModels.rebuild`` builds a new generation)."""
        with self.writing() as cursor:
            for table in [*self.table_names(), "view_fingerprint"]:
                cursor.execute(f"DELETE FROM {table}")
        with self.datastore.transaction(commit=True) as raw:
            if self.postgres:
                raw.execute(f"DELETE FROM {self.tracking_table_name} "
                            "WHERE application_name != %s", (self.table_migration_identifier,))
            else:
                raw.execute("DELETE FROM tracking WHERE application_name != ?",
                            (self.table_migration_identifier,))

    def page(self, table: str, columns: Sequence[str], *, after: int, limit: int,
             where: Sequence[str] = (), params: Sequence[Any] = (),
             filters: Iterable[tuple[str, Any]] = ()) -> tuple[list[Any], int | None]:
        """One page of ``table`` in ``position`` order (keyset pagination: a cursor is the last
        position seen, stable across a rebuild): ``columns`` of at most ``limit`` rows after
        position ``after`` that meet every ``where`` clause (their ``?`` taking ``params``) and
        every ``filters`` clause (``"sub = ?"``, value) whose value is not None. Returns (rows,
        the next cursor, or None on the last page)."""
        clauses, values = ["position > ?", *where], [after, *params]
        for clause, value in filters:
            if value is not None:
                clauses.append(clause)
                values.append(value)
        with self.reading() as cursor:
            selected = columns if "position" in columns else ("position", *columns)
            cursor.execute(f"SELECT {', '.join(selected)} FROM {table} WHERE "
                           f"{' AND '.join(clauses)} ORDER BY position LIMIT ?",
                           (*values, limit + 1))
            rows = cursor.fetchall()
        more = len(rows) > limit
        return rows[:limit], (rows[limit - 1]["position"] if more else None)

    @contextmanager
    def reading(self) -> Iterator[ViewCursor]:
        """A read-only transaction for queries (one snapshot on both stores)."""
        with self.datastore.transaction(commit=False) as cursor:
            if self.postgres:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield ViewCursor(cursor, self.postgres)


class _PostgresView(PostgresTrackingRecorder):
    """PostgreSQL side of a ReadModel: its DDL appended to the library's statements."""

    tables: tuple[str, ...] = ()

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        from psycopg import sql
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(
            sql.Composed([sql.SQL(postgres_ddl(s))])
            for s in (*self.tables, FINGERPRINT))


_CONCRETE: dict[tuple[type, type], type[ReadModel]] = {}


def _concrete(view_class: type[ReadModel], recorder: type) -> type[ReadModel]:
    key = (view_class, recorder)
    if key not in _CONCRETE:
        postgres = recorder is _PostgresView
        name = ("Postgres" if postgres else "SQLite") + view_class.__name__
        _CONCRETE[key] = type(name, (view_class, recorder), {
            "postgres": postgres, "__module__": view_class.__module__})
    return _CONCRETE[key]


def erased_episode_ids(event: Any) -> list[str] | None:
    """The episode ids an ``ErasureCompleted`` record names (a read model deletes their rows),
    None for any other event."""
    if isinstance(event, ErasureCompleted):
        return list(event.episode_ids)
    return None


def skipped(event: Any) -> bool:
    """Whether a read model ignores ``event``: an event whose key was destroyed reads as
    ``trust.cipher.ErasedEvent`` (its episode is dropped by the ErasureCompleted record)."""
    return isinstance(event, ErasedEvent)


def delete_episodes(cursor: ViewCursor, tables: Sequence[str], episode_ids: Sequence[str]) -> None:
    """Delete the rows of ``episode_ids`` from each of ``tables`` (column ``episode_id``)."""
    if not episode_ids:
        return
    clause, params = one_of("episode_id", episode_ids)
    for table in tables:
        cursor.execute(f"DELETE FROM {table} WHERE {clause}", params)
