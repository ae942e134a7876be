"""Reading the episodes' event store one episode stream at a time (for shadow runs).

``episode_streams`` yields each episode's events in version order, episodes in id order, so a
reader over 100,000 episodes holds one stream at a time; ``count_episodes`` counts the Opened
events. Both use the application's recorder and mapper only (public library API).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from application.outcomes import OutcomesApplication
from domain.episode import Episode


def episode_streams(app: OutcomesApplication, after: str | None = None
                    ) -> Iterator[list[Episode.Event]]:
    """Each episode's events in version order, episodes in id order (after ``after``). On SQLite
    one indexed scan of the events table (constant memory); elsewhere one read per episode."""
    if isinstance(app.recorder, SQLiteApplicationRecorder):
        yield from _sqlite_streams(app, app.recorder, after)
        return
    ids = sorted({str(n.originator_id) for n in _notifications(app, Episode.Opened.TOPIC)})
    for episode_id in ids:
        if after is None or episode_id > after:
            yield [e for e in app.repository.event_store.get(UUID(episode_id))
                   if isinstance(e, Episode.Event)]


def _notifications(app: OutcomesApplication, topic: str) -> Iterator[Any]:
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=1000, topics=[topic])
        yield from page
        if len(page) < 1000:
            return
        start = page[-1].id + 1


def _sqlite_streams(app: OutcomesApplication, recorder: SQLiteApplicationRecorder,
                    after: str | None) -> Iterator[list[Episode.Event]]:
    # The library's events table is scanned in primary-key order (originator_id, version): the
    # one place this module relies on its schema (ADR 0008). Ids are stored as 32 hex digits.
    statement = (f"SELECT originator_id, originator_version, topic, state FROM "
                 f"{recorder.events_table_name} WHERE topic LIKE 'outcome-ledger:Episode.%' "
                 f"AND originator_id > ? ORDER BY originator_id, originator_version")
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (UUID(after).hex if after else "",))
        current: list[Episode.Event] = []
        while rows := cursor.sqlite_cursor.fetchmany(1000):
            for row in rows:
                event = app.mapper.to_domain_event(StoredEvent(
                    originator_id=recorder.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"], topic=row["topic"],
                    state=row["state"]))
                assert isinstance(event, Episode.Event)
                if current and current[0].originator_id != event.originator_id:
                    yield current
                    current = []
                current.append(event)
        if current:
            yield current


def count_episodes(app: OutcomesApplication) -> int:
    """How many episodes the store holds (Opened events)."""
    return sum(1 for _ in _notifications(app, Episode.Opened.TOPIC))


