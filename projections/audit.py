"""Audit trail read model: every stored event of every episode, with its global position.

Serves ``GET /episodes/{id}/audit`` and ``GET /audit?clinic_id=&since=&until=&recorded_by=``.
Each row: position, episode_id, clinic_id, version, type, recorded_at (transaction time),
clinical_date, recorded_by and the event's data as stored.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.episode import Episode
from domain.erasure import ErasureCompleted
from projections.base import (
    ReadModel,
    ViewCursor,
    delete_episodes,
    erased_episode_ids,
    one_of,
    payload,
    topics_of,
    utc_text,
)

COLUMNS = ("position", "episode_id", "clinic_id", "version", "type", "recorded_at",
           "clinical_date", "recorded_by", "data")


class AuditView(ReadModel):
    name = "audit"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    tables = (
        "CREATE TABLE IF NOT EXISTS audit_events (position INTEGER PRIMARY KEY, "
        "episode_id TEXT NOT NULL, clinic_id TEXT NOT NULL, version INTEGER NOT NULL, "
        "type TEXT NOT NULL, recorded_at TEXT NOT NULL, clinical_date TEXT, "
        "recorded_by TEXT, data TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS audit_episode ON audit_events (episode_id, position)",
        "CREATE INDEX IF NOT EXISTS audit_clinic ON audit_events (clinic_id, position)",
        "CREATE INDEX IF NOT EXISTS audit_user ON audit_events (recorded_by, position)",
        "CREATE TABLE IF NOT EXISTS audit_episodes (episode_id TEXT PRIMARY KEY, "
        "clinic_id TEXT NOT NULL)",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("audit_events", "audit_episodes"), erased)
            return
        if not isinstance(event, Episode.Event):  # an ErasedEvent among others
            return
        episode_id = str(event.originator_id)
        if isinstance(event, Episode.Opened):
            cursor.execute("INSERT INTO audit_episodes VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (episode_id, event.clinic_id))
        cursor.execute("SELECT clinic_id FROM audit_episodes WHERE episode_id = ?",
                       (episode_id,))
        clinic = cursor.fetchone()
        if clinic is None:  # an erased episode (its rows were dropped)
            return
        data = payload(event)
        cursor.execute(
            "INSERT INTO audit_events VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (position, episode_id, clinic["clinic_id"], event.originator_version,
             type(event).__name__, utc_text(event.timestamp), data.get("clinical_date"),
             data.get("recorded_by"), json.dumps(data, sort_keys=True, ensure_ascii=False)))

    def trail(self, *, episode_id: UUID | None = None, clinic_id: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              recorded_by: str | None = None, clinics: Collection[str] | None = None,
              after: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """Events in position order matching every filter (``since``/``until``: recorded time,
        inclusive; ``clinics``: the caller's, none when empty), at most ``limit`` after position
        ``after``; returns (items, next cursor)."""
        clause, params = one_of("clinic_id", clinics) if clinics is not None else (None, [])
        rows, after_next = self.page(
            "audit_events", COLUMNS, after=after, limit=limit, where=[clause] if clause else [],
            params=params, filters=(
                ("episode_id = ?", str(episode_id) if episode_id else None),
                ("clinic_id = ?", clinic_id), ("recorded_by = ?", recorded_by),
                ("recorded_at >= ?", utc_text(since) if since else None),
                ("recorded_at <= ?", utc_text(until) if until else None)))
        return [{**{c: r[c] for c in COLUMNS}, "data": json.loads(r["data"])} for r in rows], \
            after_next
