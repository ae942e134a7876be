"""Caseload read model: a clinic's open episodes in the order a clinician should look at them,
for ``GET /clinics/{clinic_id}/caseload`` and ``/health``'s ``safety_overdue`` (ADR 0032).

One row per episode: clinic, patient_ref, staged instrument, opening date, current stage and
latest staged score (the episodes read model's own rules: ``projections.episodes.stage_of``,
``state_points`` and ``score_of``, i.e. ``domain.rules``), the unresolved alerts by kind, the
on-track status and ``rank``, the sort key of the caseload. A small JSON ``state`` per row (the episode's
criteria, assessments and stages as the episodes read model keeps them, its alerts and the rule
packs that watch it) lets each event update the row from the events alone. The on-track status
is the watching packs' current signal over the staged scores (``domain.signals.watch``), so an
episode on track at a decision point shows ``on_track`` without any alert event.

The order (``rank``, text compared by code point on both stores): the group first (0 an
unresolved safety alert, 1 an unresolved off-track alert, 2 an unresolved overdue alert, 3 the
rest), then, within a group, the longest-waiting first: the oldest unresolved alert of the
group's kind (recorded time of its ``AlertRaised``), then the most days since the last staged
score (the opening date when there is none, as the overdue rule counts), then the opening
position. Days since the assessment and whether a safety alert is overdue depend on the time
of the query, so they are computed then (``find``, ``safety_overdue``), never stored: only the
dates they are computed from are. The key is a cursor that a rebuild keeps (it is made of the
events alone).

``caseload_safety`` holds each unacknowledged, unresolved safety alert (its raise time), of
open and closed episodes alike (the record must be completed: a closed episode's alert can still
be acknowledged): what ``safety_overdue`` counts.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.criteria.timeline import Point
from domain.episode import Episode
from domain.erasure import ErasureCompleted
from domain.signals.watch import on_track
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
from projections.episodes import mutate_state, score_of, stage_of, state_points

KINDS = ("safety", "off_track", "overdue")  # the caseload's groups, in order; then the rest
ON_TRACK = ("on_track", "not_on_track", "insufficient", "not_yet")
COLUMNS = ("position", "episode_id", "patient_ref", "instrument", "opened_on", "stage",
           "latest", "assessed_on", "on_track", "safety", "off_track", "overdue",
           "safety_waiting_since", "rank")
# The facts the episodes read model's state follows: the stage rests on all of them, the latest
# score on the assessments and the criteria.
_SCORE_FACTS = (Episode.AssessmentRecorded, Episode.AssessmentVoided, Episode.CriteriaAdopted)
_EPISODE_FACTS = (*_SCORE_FACTS, Episode.StageEvent, Episode.StageRetracted)


class CaseloadView(ReadModel):
    name = "caseload"
    topics = (*topics_of(Episode), ErasureCompleted.TOPIC)
    version = 1
    tables = (
        "CREATE TABLE IF NOT EXISTS caseload (position INTEGER PRIMARY KEY, "
        "episode_id TEXT UNIQUE NOT NULL, clinic_id TEXT NOT NULL, patient_ref TEXT NOT NULL, "
        "instrument TEXT NOT NULL, opened_on TEXT NOT NULL, closed_on TEXT, "
        "stage TEXT NOT NULL, latest TEXT, assessed_on TEXT, on_track TEXT NOT NULL, "
        "safety INTEGER NOT NULL, off_track INTEGER NOT NULL, overdue INTEGER NOT NULL, "
        "safety_waiting_since TEXT, rank TEXT NOT NULL, state TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS caseload_clinic ON caseload (clinic_id, rank)",
        "CREATE TABLE IF NOT EXISTS caseload_safety (alert_id TEXT PRIMARY KEY, "
        "episode_id TEXT NOT NULL, raised_at TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS caseload_safety_raised ON caseload_safety (raised_at)",
    )

    def apply(self, event: Any, cursor: ViewCursor, position: int) -> None:
        if skipped(event):
            return
        if (erased := erased_episode_ids(event)) is not None:
            delete_episodes(cursor, ("caseload", "caseload_safety"), erased)
            return
        episode_id = str(event.originator_id)
        if isinstance(event, Episode.Opened):
            self._opened(event, cursor, position)
            return
        cursor.execute("SELECT position, instrument, opened_on, assessed_on, state FROM caseload "
                       "WHERE episode_id = ?", (episode_id,))
        row = cursor.fetchone()
        if row is None:  # not an episode event, or an erased episode's
            return
        state = json.loads(row["state"])
        columns: dict[str, Any] = {}
        if isinstance(event, _EPISODE_FACTS):
            mutate_state(event, state)
            columns["stage"] = stage_of(state)
            if isinstance(event, _SCORE_FACTS):  # the staged points, computed once for both
                points = state_points(state, row["instrument"])
                latest = score_of(state, points[-1]) if points else None
                columns.update(latest=to_json({"score": latest["total"], "on": latest["date"]})
                               if latest else None, assessed_on=latest["date"] if latest else None)
                columns["on_track"] = on_track_of(state, row["instrument"], row["opened_on"],
                                                  points)
        elif isinstance(event, Episode.Closed):
            columns["closed_on"] = event.clinical_date.isoformat()
        else:
            _follow_alerts(event, state, cursor, episode_id)
        alerts = [a for a in state["alerts"].values() if a["status"] != "resolved"]
        counts = {kind: sum(1 for a in alerts if a["kind"] == kind) for kind in KINDS}
        waiting = min((a["raised_at"] for a in alerts
                       if a["kind"] == "safety" and a["status"] == "open"), default=None)
        assessed_on = columns["assessed_on"] if "assessed_on" in columns else row["assessed_on"]
        if isinstance(event, Episode.SignalsWatched):
            columns["on_track"] = on_track_of(state, row["instrument"], row["opened_on"],
                                              state_points(state, row["instrument"]))
        columns.update(counts, safety_waiting_since=waiting,
                       rank=rank_of(alerts, assessed_on or row["opened_on"], row["position"]),
                       state=to_json(state))
        assignments = ", ".join(f"{name} = ?" for name in columns)
        cursor.execute(f"UPDATE caseload SET {assignments} WHERE episode_id = ?",
                       (*columns.values(), episode_id))

    def _opened(self, event: Episode.Opened, cursor: ViewCursor, position: int) -> None:
        state: dict[str, Any] = {"criteria": event.criteria, "assessments": [], "stages": {},
                                 "alerts": {}, "watching": None}
        opened_on = event.clinical_date.isoformat()
        cursor.execute(
            "INSERT INTO caseload (position, episode_id, clinic_id, patient_ref, instrument, "
            "opened_on, stage, on_track, safety, off_track, overdue, rank, state) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (episode_id) DO NOTHING",
            (position, str(event.originator_id), event.clinic_id, event.patient_ref,
             event.instrument, opened_on, "episode", "not_yet", 0, 0, 0,
             rank_of([], opened_on, position), to_json(state)))

    # -- queries ----------------------------------------------------------------------------

    def find(self, clinic_id: str, *, now: datetime, safety_ack_hours: float,
             kind: str | None = None, on_track: str | None = None,
             instrument: str | None = None, stage: str | None = None,
             after: str | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """The open episodes of ``clinic_id`` meeting every given filter (``kind``: with at least
        one unresolved alert of that kind), in caseload order, at most ``limit`` after the
        cursor ``after`` (a row's ``rank``); returns (items, the next cursor or None on the last
        page). ``now`` (timezone-aware) gives the UTC day ``days_since_assessment`` counts to
        (days, from the latest staged score's clinical date; None before any) and the moment
        a safety alert unacknowledged for ``safety_ack_hours`` hours is overdue."""
        clauses = ["clinic_id = ?", "closed_on IS NULL", "rank > ?"]
        values: list[Any] = [clinic_id, after or ""]
        if kind is not None:
            assert kind in KINDS, kind
            clauses.append(f"{kind} > 0")
        for column, value in (("on_track", on_track), ("instrument", instrument),
                              ("stage", stage)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        with self.reading() as cursor:
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM caseload WHERE "
                           f"{' AND '.join(clauses)} ORDER BY rank LIMIT ?", (*values, limit + 1))
            rows = cursor.fetchall()
        today, cutoff = now.astimezone(UTC).date(), _cutoff(now, safety_ack_hours)
        items = [_item(r, today, cutoff) for r in rows[:limit]]
        return items, (rows[limit - 1]["rank"] if len(rows) > limit else None)

    def safety_overdue(self, *, now: datetime, safety_ack_hours: float) -> int:
        """How many safety alerts (of every clinic) have stayed unacknowledged and unresolved
        for ``safety_ack_hours`` hours or more at ``now`` (timezone-aware)."""
        with self.reading() as cursor:
            cursor.execute("SELECT COUNT(*) AS n FROM caseload_safety WHERE raised_at <= ?",
                           (_cutoff(now, safety_ack_hours),))
            row = cursor.fetchone()
        return int(row["n"])


def _follow_alerts(event: Any, state: dict[str, Any], cursor: ViewCursor,
                   episode_id: str) -> None:
    """Update the alerts and watching packs of ``state`` for an alert or signal event (others change
    nothing), and the unacknowledged safety alerts of ``caseload_safety``."""
    alerts = state["alerts"]
    if isinstance(event, Episode.AlertRaised):
        raised_at = utc_text(event.timestamp)
        alerts[event.alert_id] = {"kind": event.kind, "raised_at": raised_at, "status": "open"}
        if event.kind == "safety":
            cursor.execute("INSERT INTO caseload_safety VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           (event.alert_id, episode_id, raised_at))
    elif isinstance(event, Episode.AlertAcknowledged | Episode.AlertResolved):
        if event.alert_id in alerts:
            alerts[event.alert_id]["status"] = (
                "acknowledged" if isinstance(event, Episode.AlertAcknowledged) else "resolved")
        cursor.execute("DELETE FROM caseload_safety WHERE alert_id = ?", (event.alert_id,))
    elif isinstance(event, Episode.SignalsWatched):
        state["watching"] = {"packs": event.packs, "curve": event.curve}


def on_track_of(state: dict[str, Any], instrument: str, opened_on: str,
                points: list[Point]) -> str:
    """The episode's on-track status: the current signals of the rule packs that watch it
    (``state["watching"]``) over its staged ``points`` (``state_points``), by
    ``domain.signals.watch.on_track``, the rule the Episode's alerts follow."""
    return on_track(state["watching"], instrument, points, opened_on=date.fromisoformat(opened_on))


def rank_of(unresolved: list[dict[str, Any]], waiting_since: str, position: int) -> str:
    """The caseload sort key (text): the group (0 safety, 1 off_track, 2 overdue, 3 the rest:
    the first kind among the ``unresolved`` alerts), the raise time of the oldest unresolved
    alert of that kind (UTC ISO), ``waiting_since`` (ISO date of the last staged score, or the
    opening date) and the opening ``position`` (20 digits)."""
    for group, kind in enumerate(KINDS):
        raised = [a["raised_at"] for a in unresolved if a["kind"] == kind]
        if raised:
            return f"{group}|{min(raised)}|{waiting_since}|{position:020d}"
    return f"{len(KINDS)}||{waiting_since}|{position:020d}"


def _cutoff(now: datetime, hours: float) -> str:
    """A safety alert raised at or before this UTC text is overdue at ``now``."""
    return utc_text(now - timedelta(hours=hours))


def _item(row: Any, today: date, cutoff: str) -> dict[str, Any]:
    assessed_on = row["assessed_on"]
    waiting = row["safety_waiting_since"]
    return {
        "episode_id": row["episode_id"], "patient_ref": row["patient_ref"],
        "instrument": row["instrument"], "stage": row["stage"],
        "latest": json.loads(row["latest"]) if row["latest"] else None,
        "alerts": {kind: row[kind] for kind in KINDS}, "on_track": row["on_track"],
        "days_since_assessment": (today - date.fromisoformat(assessed_on)).days
        if assessed_on else None,
        "safety_overdue": waiting is not None and waiting <= cutoff,
        "opened_on": row["opened_on"],
    }
