"""Reading the episodes' event store one episode stream at a time (for shadow runs).

``episode_streams`` yields each episode's events in version order, episodes in id order, so a
reader over 100,000 episodes holds one stream at a time; ``count_episodes`` counts the Opened
events. Both use the application's recorder and mapper; on SQLite and PostgreSQL the stream is
one scan of the recorder's events table in primary-key order (originator_id, version), on
PostgreSQL through a server-side cursor (constant memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from application.outcomes import OutcomesApplication
from domain.episode import Episode
from trust.cipher import ErasedEvent


def episode_streams(app: OutcomesApplication, after: str | None = None,
                    until: str | None = None) -> Iterator[list[Episode.Event]]:
    """Each episode's events in version order, episodes in id order, ids in
    (``after``, ``until``] (canonical UUID text; None: unbounded). On SQLite and PostgreSQL one
    indexed scan of the events table (constant memory); elsewhere (the in-memory store) one
    read per episode."""
    if isinstance(app.recorder, SQLiteApplicationRecorder):
        yield from _grouped(app, _sqlite_rows(app.recorder, after, until))
        return
    if isinstance(app.recorder, PostgresApplicationRecorder):
        yield from _grouped(app, _postgres_rows(app.recorder, after, until))
        return
    ids = sorted({str(n.originator_id) for n in app.notifications(Episode.Opened.TOPIC)})
    for episode_id in ids:
        if (after is None or episode_id > after) and (until is None or episode_id <= until):
            yield from _readable(app, list(app.repository.event_store.get(UUID(episode_id))))


EPISODE_TOPICS = "outcome-ledger:Episode.%"


def _sqlite_rows(recorder: SQLiteApplicationRecorder, after: str | None, until: str | None
                 ) -> Iterator[StoredEvent]:
    # The library's events table is scanned in primary-key order (originator_id, version): the
    # one place this module relies on its schema (ADR 0008). Ids are stored as 32 hex digits.
    statement = (f"SELECT originator_id, originator_version, topic, state FROM "
                 f"{recorder.events_table_name} WHERE topic LIKE ? "
                 f"AND originator_id > ? AND originator_id <= ? ORDER BY originator_id, originator_version")
    raw: str | None = None
    originator_id: UUID | str = ""
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (EPISODE_TOPICS, UUID(after).hex if after else "",
                                   UUID(until).hex if until else "g"))
        while rows := cursor.sqlite_cursor.fetchmany(1000):
            for row in rows:
                if row["originator_id"] != raw:  # one UUID per episode, not one per event
                    raw = row["originator_id"]
                    originator_id = recorder.convert_originator_id(raw)
                yield StoredEvent(originator_id=originator_id,
                                  originator_version=row["originator_version"],
                                  topic=row["topic"], state=row["state"])


def _postgres_rows(recorder: PostgresApplicationRecorder, after: str | None,
                   until: str | None) -> Iterator[StoredEvent]:
    # The same scan on PostgreSQL: the primary key (originator_id uuid, originator_version)
    # orders uuids by their bytes, i.e. as their hex text; a named (server-side) cursor keeps
    # memory constant.
    from psycopg import sql
    statement = sql.SQL(
        "SELECT originator_id, originator_version, topic, state FROM {}.{} WHERE topic LIKE %s "
        "AND originator_id > %s AND originator_id <= %s ORDER BY originator_id, originator_version"
    ).format(
            sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name))
    lowest = UUID(after) if after else UUID(int=0)
    highest = UUID(until) if until else UUID(int=2**128 - 1)
    with recorder.datastore.get_connection() as conn, conn.transaction(), \
            conn.cursor(name="episode_streams") as cursor:
        cursor.itersize = 1000
        cursor.execute(statement, (EPISODE_TOPICS, lowest, highest))
        for row in cursor:
            yield StoredEvent(originator_id=row["originator_id"],
                              originator_version=row["originator_version"], topic=row["topic"],
                              state=bytes(row["state"]))


def _grouped(app: OutcomesApplication, rows: Iterator[StoredEvent]
             ) -> Iterator[list[Episode.Event]]:
    """Each episode's events in version order; an erased episode (an event reads as
    ``ErasedEvent``, or its key was destroyed) is left out."""
    current: list[Any] = []
    for stored in rows:
        event = app.mapper.to_domain_event(stored)
        if current and current[0].originator_id != event.originator_id:
            yield from _readable(app, current)
            current = []
        current.append(event)
    if current:
        yield from _readable(app, current)


def _readable(app: OutcomesApplication, events: list[Any]) -> Iterator[list[Episode.Event]]:
    if any(isinstance(e, ErasedEvent) for e in events) or app.is_erased(events[0].originator_id):
        return
    assert all(isinstance(e, Episode.Event) for e in events)
    yield events


def count_episodes(app: OutcomesApplication) -> int:
    """How many episodes the store holds (Opened events)."""
    return sum(1 for _ in app.notifications(Episode.Opened.TOPIC))


