"""The access log's event store: one ``AccessRecord`` appended per HTTP request.

An event store of its own (``var/access-log.sqlite``), never the episodes' store, configured only
by ``bootstrap.Settings`` (ADR 0010). Each append is one SQLite transaction of one new aggregate
(``domain.access``): no record is read first, so concurrent requests never conflict, and the
write is durable when ``record`` returns (WAL, ``synchronous=FULL``, the SQLite default the
library keeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.utils import EnvType

from application.environment import ExplicitEnvironment
from application.outcomes import Clock, utc_now
from domain.access import Access, AccessRecord


class AccessLog(ExplicitEnvironment[UUID]):
    """Where access records are stored; ``clock`` gives the requests' arrival time (UTC)."""

    name = "AccessLog"

    def __init__(self, env: EnvType | None = None, *, clock: Clock = utc_now) -> None:
        super().__init__(env)
        self.clock = clock

    def record(self, access: Access) -> int:
        """Append one record of ``access``; returns its position in the access log (1, 2, ...).
        Raises the recorder's errors (e.g. ``OperationalError`` when the file is locked for
        longer than its lock timeout): the caller must not acknowledge the request then."""
        recordings = self.save(AccessRecord.record(access))
        return recordings[-1].notification.id

    def record_all(self, accesses: Sequence[Access]) -> list[int]:
        """Append one record of each of ``accesses`` in one transaction (one fsync for all:
        group commit, ``api.access.GroupCommit``); returns their positions, in order. Raises
        the recorder's errors, and then none of them is stored."""
        recordings = self.save(*(AccessRecord.record(access) for access in accesses))
        return [recording.notification.id for recording in recordings]
