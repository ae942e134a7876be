"""Stage history read model: every stage decision of every episode, retracted ones marked.

Serves ``GET /episodes/{id}/stages``, including ``?as_of=`` (transaction time: what the record
showed at that moment) and ``?include_retracted=true``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from application.views import describe_retraction, describe_stage_event
from domain.episode import Episode
from domain.erasure import ErasureCompleted
from projections.base import (
    ReadModel,
    ViewCursor,
    delete_episodes,
    erased_episode_ids,
    skipped,
    to_json,
    topics_of,
    utc_text,
)

STAGE_TOPICS = tuple(sorted({
    Episode.Opened.TOPIC, ErasureCompleted.TOPIC, Episode.CriteriaAdopted.TOPIC, Episode.StageRetracted.TOPIC,
    *(t for t in topics_of(Episode) if any(
        issubclass(c, Episode.StageEvent) and t == c.TOPIC for c in vars(Episode).values()
        if isinstance(c, type)))}))


class StagesView(ReadModel):
    name = "stages"
    topics = STAGE_TOPICS
    tables = (
        "CREATE TABLE IF NOT EXISTS stage_events (stage_id TEXT PRIMARY KEY, "
        "episode_id TEXT NOT NULL, position INTEGER NOT NULL, date TEXT NOT NULL, "
        "recorded_at TEXT NOT NULL, retracted_at TEXT, event TEXT NOT NULL, retraction TEXT)",
        "CREATE INDEX IF NOT EXISTS stage_events_episode ON stage_events (episode_id, date)",
        "CREATE TABLE IF NOT EXISTS stage_criteria (episode_id TEXT NOT NULL, "
        "recorded_at TEXT NOT NULL, criteria TEXT NOT NULL, PRIMARY KEY (episode_id, recorded_at))",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("stage_events", "stage_criteria"), erased)
            return
        episode_id = str(event.originator_id)
        if not isinstance(event, Episode.Opened):  # an erased episode's rows are gone
            cursor.execute("SELECT 1 FROM stage_criteria WHERE episode_id = ? LIMIT 1",
                           (episode_id,))
            if cursor.fetchone() is None:
                return
        if isinstance(event, Episode.Opened | Episode.CriteriaAdopted):
            criteria = {k: event.criteria[k] for k in ("id", "version", "hash")}
            cursor.execute("INSERT INTO stage_criteria VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           (episode_id, utc_text(event.timestamp), to_json(criteria)))
        elif isinstance(event, Episode.StageEvent):
            cursor.execute(
                "INSERT INTO stage_events (stage_id, episode_id, position, date, recorded_at, "
                "event) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (event.stage_id, episode_id, position, event.clinical_date.isoformat(),
                 utc_text(event.timestamp), to_json(describe_stage_event(event))))
        elif isinstance(event, Episode.StageRetracted):
            cursor.execute(
                "UPDATE stage_events SET retracted_at = ?, retraction = ? WHERE stage_id = ?",
                (utc_text(event.timestamp), to_json(describe_retraction(event)), event.stage_id))

    def criteria(self, episode_id: UUID, as_of: datetime | None = None) -> dict[str, str] | None:
        """``{"id", "version", "hash"}`` of the criteria the episode was staged under at
        ``as_of`` (default now), or None when it did not exist then."""
        with self.reading() as cursor:
            cursor.execute("SELECT criteria FROM stage_criteria WHERE episode_id = ? AND "
                           "recorded_at <= ? ORDER BY recorded_at DESC LIMIT 1",
                           (str(episode_id), utc_text(as_of) if as_of else "9999"))
            row = cursor.fetchone()
        return json.loads(row["criteria"]) if row else None

    def history(self, episode_id: UUID, *, as_of: datetime | None = None,
                include_retracted: bool = False) -> list[dict[str, Any]]:
        """Stage decisions in clinical-date order as recorded at ``as_of`` (timezone-aware;
        default now). Each has ``retracted`` (the retraction, or null) when
        ``include_retracted``; otherwise only the decisions not retracted by then."""
        where, params = ["episode_id = ?"], [str(episode_id)]
        if as_of is not None:
            where.append("recorded_at <= ?")
            params.append(utc_text(as_of))
        with self.reading() as cursor:
            cursor.execute(f"SELECT event, retracted_at, retraction FROM stage_events WHERE "
                           f"{' AND '.join(where)} ORDER BY date, position", params)
            rows = cursor.fetchall()
        cutoff = utc_text(as_of) if as_of is not None else None
        history = []
        for row in rows:
            retracted = row["retracted_at"] is not None and (
                cutoff is None or row["retracted_at"] <= cutoff)
            if retracted and not include_retracted:
                continue
            event = json.loads(row["event"])
            if include_retracted:
                event["retracted"] = json.loads(row["retraction"]) if retracted else None
            history.append(event)
        return history

