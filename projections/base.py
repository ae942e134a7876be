"""The machinery every read model shares: a tracked SQLite view, batch processing, rebuild.

A read model is an ``eventsourcing`` ``SQLiteTrackingRecorder`` with its own tables, in its own
database file (SQLite's tracking table is not prefixed, so one file per read model). Its rows and
its tracking position are written in one transaction, and the library's single-row tracking
refuses a position that is not newer, so reprocessing an event is harmless (exactly-once).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteTrackingRecorder

from domain.criteria.fold import Observation
from domain.episode import AssessmentState, Episode
from domain.rules import EpisodeOutcome

# Fields every event has that the read models take from the envelope instead of the payload.
ENVELOPE = ("originator_id", "originator_version", "timestamp")


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


class ReadModel(SQLiteTrackingRecorder):
    """Base view: subclasses give ``name``, ``tables`` (CREATE statements) and
    ``apply(event, cursor, position)``, which updates rows for one event (events a read model does
    not need only advance its position)."""

    name = "read-model"
    # Bumped when the tables or the stored state change shape: a new version is a new database
    # file, built from position 0 on first use (blue/green, eventsourcing docs "rebuild").
    version = 1
    tables: tuple[str, ...] = ()

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.tables]

    def apply(self, event: Any, cursor: SQLiteCursor, position: int) -> None:
        raise NotImplementedError

    def process(self, application_name: str,
                batch: Sequence[tuple[DomainEventProtocol[Any], int]]) -> None:
        """Apply the events of ``batch`` ((event, position) pairs in order) that come after the
        tracked position, and record the last one, in one transaction. Raises IntegrityError or
        OperationalError when another process changed the view meanwhile (nothing is applied)."""
        if not batch:
            return
        with self.datastore.transaction(commit=True) as cursor:
            done = self._max_tracking_id(application_name, cursor) or 0
            pending = [(event, position) for event, position in batch if position > done]
            for event, position in pending:
                self.apply(event, cursor, position)
            if pending:
                self._insert_tracking(cursor, Tracking(application_name, pending[-1][1]))

    def position(self, application_name: str) -> int:
        """The last processed position (0 before any)."""
        return self.max_tracking_id(application_name) or 0

    def clear(self) -> None:
        """Delete every row and the tracking position, in one transaction (before a rebuild)."""
        with self.datastore.transaction(commit=True) as cursor:
            for statement in self.tables:
                if statement.startswith("CREATE TABLE"):
                    table = statement.split("EXISTS", 1)[1].split("(", 1)[0].strip()
                    cursor.execute(f"DELETE FROM {table}")
            cursor.execute("DELETE FROM tracking WHERE application_name != ?",
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
    def reading(self) -> Iterator[SQLiteCursor]:
        """A read-only transaction for queries."""
        with self.datastore.transaction(commit=False) as cursor:
            yield cursor

