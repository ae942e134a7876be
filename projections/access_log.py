"""Access-log read model: one row per ``AccessRecord.Recorded``, queried by ``GET /access-log``.

Tracked like the episodes' read models (``projections.base.ReadModel``), but over the access log's
own event store: ``bootstrap.build`` gives it a ``ReadModels`` of its own, whose positions are
the access log's (application name ``AccessLog``). The cursor of a page is that position, so it
stays valid across a rebuild.

Who sees what (``visible_to``): a record with a clinic is seen by the auditors of that clinic; a
record without one by the auditors of a clinic the caller's token carried; a record of a failed
authentication (no principal, no clinic) by every auditor. A record whose clinic the caller's
token did not carry (a denial: another clinic's episode or run answered 404 as a missing one, a
write into another clinic answered 403) is seen by that clinic's auditors and, its clinic shown
as null, by the auditors of a clinic the caller's token carried: to them it reads exactly as
the record of a request for a missing resource, so the access log is no existence oracle.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from domain.access import AccessRecord
from projections.base import ReadModel, ViewCursor, utc_text

COLUMNS = ("position", "record_id", "at", "recorded_at", "sub", "authenticated", "roles",
           "clinics", "clinic_id", "method", "route", "episode_id", "run_id", "assessment_id",
           "status", "request_id", "client")
JSON_COLUMNS = ("roles", "clinics")


class AccessLogView(ReadModel):
    name = "access-log"
    version = 2  # v2: the token's clinics in a table of their own (no JSON functions in queries)
    topics = (AccessRecord.Recorded.TOPIC,)
    tables = (
        "CREATE TABLE IF NOT EXISTS access_records (position INTEGER PRIMARY KEY, "
        "record_id TEXT NOT NULL, at TEXT NOT NULL, recorded_at TEXT NOT NULL, "
        "sub TEXT NOT NULL, authenticated INTEGER NOT NULL, roles TEXT NOT NULL, "
        "clinics TEXT NOT NULL, clinic_id TEXT, method TEXT NOT NULL, route TEXT NOT NULL, "
        "episode_id TEXT, run_id TEXT, assessment_id TEXT, status INTEGER NOT NULL, "
        "request_id TEXT NOT NULL, client TEXT)",
        "CREATE INDEX IF NOT EXISTS access_clinic ON access_records (clinic_id, position)",
        "CREATE INDEX IF NOT EXISTS access_sub ON access_records (sub, position)",
        "CREATE INDEX IF NOT EXISTS access_episode ON access_records (episode_id, position)",
        "CREATE TABLE IF NOT EXISTS access_record_clinics (position INTEGER NOT NULL, "
        "clinic_id TEXT NOT NULL, PRIMARY KEY (position, clinic_id))",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if not isinstance(event, AccessRecord.Recorded):
            return
        cursor.execute(
            f"INSERT INTO access_records ({', '.join(COLUMNS)}) VALUES "
            f"({', '.join('?' * len(COLUMNS))}) ON CONFLICT DO NOTHING",
            (position, str(event.originator_id), utc_text(event.at), utc_text(event.timestamp),
             event.sub, int(event.authenticated), json.dumps(event.roles),
             json.dumps(event.clinics), event.clinic_id, event.method, event.route,
             event.episode_id, event.run_id, event.assessment_id, event.status,
             event.request_id, event.client))
        for clinic in sorted(set(event.clinics)):
            cursor.execute("INSERT INTO access_record_clinics VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (position, clinic))

    def records(self, *, visible_to: Collection[str], clinic_id: str | None = None,
                sub: str | None = None, since: datetime | None = None,
                until: datetime | None = None, episode_id: str | None = None, after: int = 0,
                limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """Records in position order that the auditor of clinics ``visible_to`` may see (see
        the module docstring) and that match every filter (``since``/``until``: arrival time,
        inclusive), at most ``limit`` after position ``after``; returns (items, next cursor)."""
        if clinic_id is not None and clinic_id not in visible_to:
            return [], None  # (not filtered on a hidden clinic: that would tell it)
        clinics = sorted(visible_to)
        marks = ", ".join("?" * len(clinics))
        held = "SELECT 1 FROM access_record_clinics c WHERE c.position = access_records.position"
        staff = f"EXISTS ({held} AND c.clinic_id IN ({marks or 'NULL'}))"
        outside = f"NOT EXISTS ({held} AND c.clinic_id = access_records.clinic_id)"
        visible = (f"(clinic_id IN ({marks or 'NULL'}) OR (clinic_id IS NULL AND authenticated = 0) OR "
                   f"({staff} AND (clinic_id IS NULL OR {outside})))")
        rows, after_next = self.page(
            "access_records", COLUMNS, after=after, limit=limit, where=[visible],
            params=[*clinics, *clinics], filters=(
                ("clinic_id = ?", clinic_id), ("sub = ?", sub), ("episode_id = ?", episode_id),
                ("at >= ?", utc_text(since) if since else None),
                ("at <= ?", utc_text(until) if until else None)))
        items = [{c: (json.loads(r[c]) if c in JSON_COLUMNS else r[c]) for c in COLUMNS}
                 for r in rows]
        for item in items:
            item["authenticated"] = bool(item["authenticated"])
            if item["clinic_id"] not in visible_to:
                item["clinic_id"] = None  # another clinic's, seen as its caller's staff activity
        return items, after_next
