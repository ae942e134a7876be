"""Shadow re-scoring runs: read every selected episode's events, replay them under other criteria,
keep the would-be histories in a read model of their own, keyed by run and criteria hash.

The episodes' event store is never written by a shadow run; the run's own record (Requested,
Completed) goes to the runs' log, a store of its own. Episodes are read in episode-id order, one
stream at a time, so memory does not grow with their number, and the run keeps its last episode
id with every batch of results, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from application.outcomes import OutcomesApplication
from domain.episode import Episode
from domain.rescoring import MILESTONES, EpisodeRescore, Rescoring, RescoringLog, replay
from projections.base import to_json

Progress = Callable[[int, int], None]  # (episodes processed, episodes in the store)
BATCH = 500
_TABLES = (
    "CREATE TABLE IF NOT EXISTS rescoring_runs (run_id TEXT PRIMARY KEY, criteria TEXT NOT NULL, "
    "clinic_id TEXT, as_of TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, "
    "status TEXT NOT NULL, processed INTEGER NOT NULL, total INTEGER, episodes INTEGER NOT NULL, "
    "changed INTEGER NOT NULL, last_episode_id TEXT, finished_at TEXT, figures TEXT)",
    "CREATE TABLE IF NOT EXISTS rescoring_results (run_id TEXT NOT NULL, episode_id TEXT NOT NULL, "
    "criteria_hash TEXT NOT NULL, clinic_id TEXT NOT NULL, changed INTEGER NOT NULL, "
    "stage_now TEXT NOT NULL, stage_new TEXT NOT NULL, criteria_now TEXT NOT NULL, "
    "milestones_now TEXT NOT NULL, milestones_new TEXT NOT NULL, diff TEXT NOT NULL, "
    "now TEXT NOT NULL, new TEXT NOT NULL, outcome_new TEXT, error TEXT, "
    "PRIMARY KEY (run_id, episode_id))",
    "CREATE INDEX IF NOT EXISTS rescoring_changed ON rescoring_results (run_id, changed, episode_id)",
)


class RescoringStore:
    """The runs and their per-episode results (SQLite: ``folder/rescorings.sqlite``, or a private
    in-memory database)."""

    def __init__(self, folder: Path | None) -> None:
        name = (str(folder / "rescorings.sqlite") if folder is not None
                else f"file:rescorings-{uuid4().hex}?mode=memory&cache=shared")
        self.datastore = SQLiteDatastore(name, lock_timeout=10)
        with self.datastore.transaction(commit=True) as cursor:
            for statement in _TABLES:
                cursor.execute(statement)

    def create(self, run: Rescoring) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO rescoring_runs (run_id, criteria, clinic_id, as_of, requested_by, "
                "requested_at, status, processed, episodes, changed) VALUES (?,?,?,?,?,?,?,0,0,0) "
                "ON CONFLICT DO NOTHING",
                (str(run.id), to_json({k: run.criteria[k] for k in ("id", "version", "hash")}),
                 run.clinic_id, run.as_of.isoformat(), run.recorded_by,
                 run.created_on.isoformat(), "requested"))

    def run(self, run_id: UUID) -> dict[str, Any] | None:
        """The run's status, progress, counts and figures, or None."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT * FROM rescoring_runs WHERE run_id = ?", (str(run_id),))
            row = cursor.fetchone()
        if row is None:
            return None
        data = dict(zip(row.keys(), row, strict=True))
        data["criteria"] = json.loads(data["criteria"])
        data["figures"] = json.loads(data["figures"]) if data["figures"] else None
        return data

    def changes(self, run_id: UUID, after: str = "", limit: int = 50
                ) -> tuple[list[dict[str, Any]], str | None]:
        """Episodes whose history would differ, in episode-id order after ``after``."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT episode_id, clinic_id, stage_now, stage_new, criteria_now, diff, error "
                "FROM rescoring_results WHERE run_id = ? AND changed = 1 AND episode_id > ? "
                "ORDER BY episode_id LIMIT ?", (str(run_id), after, limit + 1))
            rows = cursor.fetchall()
        items = [{"episode_id": r["episode_id"], "clinic_id": r["clinic_id"],
                  "stage_now": r["stage_now"], "stage_new": r["stage_new"],
                  "criteria_now": json.loads(r["criteria_now"]), "error": r["error"],
                  **json.loads(r["diff"])} for r in rows[:limit]]
        return items, (items[-1]["episode_id"] if len(rows) > limit else None)

    def episode(self, run_id: UUID, episode_id: UUID) -> dict[str, Any] | None:
        """One episode's full history now and under the run's criteria, or None."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT * FROM rescoring_results WHERE run_id = ? AND episode_id = ?",
                           (str(run_id), str(episode_id)))
            row = cursor.fetchone()
        if row is None:
            return None
        data = dict(zip(row.keys(), row, strict=True))
        for name in ("criteria_now", "milestones_now", "milestones_new", "diff", "now", "new",
                     "outcome_new"):
            data[name] = json.loads(data[name]) if data[name] else None
        data["changed"] = bool(data["changed"])
        return data

    def save_batch(self, run_id: UUID, criteria_hash: str, results: list[EpisodeRescore],
                   processed: int, total: int, last_episode_id: str | None) -> None:
        """Results and the run's progress in one transaction (what makes a run resumable)."""
        with self.datastore.transaction(commit=True) as cursor:
            for r in results:
                cursor.execute(
                    "INSERT INTO rescoring_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    (str(run_id), str(r.episode_id), criteria_hash, r.clinic_id, int(r.changed),
                     r.stage_now, r.stage_new, to_json(r.criteria_now),
                     to_json(r.milestones_now), to_json(r.milestones_new), to_json(r.diff),
                     to_json(r.now), to_json(r.new),
                     to_json(r.outcome_new) if r.outcome_new is not None else None, r.error))
            cursor.execute(
                "UPDATE rescoring_runs SET status = 'running', processed = ?, total = ?, "
                "last_episode_id = ?, episodes = (SELECT COUNT(*) FROM rescoring_results WHERE "
                "run_id = ?), changed = (SELECT COUNT(*) FROM rescoring_results WHERE run_id = ? "
                "AND changed = 1) WHERE run_id = ?",
                (processed, total, last_episode_id, str(run_id), str(run_id), str(run_id)))

    def finish(self, run_id: UUID, status: str, figures: dict[str, Any] | None = None) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("UPDATE rescoring_runs SET status = ?, figures = ?, finished_at = ? "
                           "WHERE run_id = ?", (status, to_json(figures) if figures else None,
                                                datetime.now(UTC).isoformat(), str(run_id)))

    def figures(self, run_id: UUID) -> dict[str, Any]:
        """Cohort rates (percent of evaluable episodes) under the episodes' current criteria and
        under the run's, side by side (summed in SQL: memory does not grow with episodes)."""
        figures = {}
        with self.datastore.transaction(commit=False) as cursor:
            for side in ("now", "new"):
                column = f"milestones_{side}"
                evaluable = f"json_extract({column}, '$.evaluable')"
                sums = ", ".join(f"SUM(CASE WHEN {evaluable} THEN json_extract({column}, '$.{m}') "
                                 f"ELSE 0 END)" for m in MILESTONES)
                cursor.execute(f"SELECT COUNT(*), SUM({evaluable}), {sums} FROM "
                               f"rescoring_results WHERE run_id = ?", (str(run_id),))
                episodes, evaluable_count, *counts = cursor.fetchone()
                figures[side] = _rates(episodes, evaluable_count or 0,
                                       dict(zip(MILESTONES, (c or 0 for c in counts), strict=True)))
        return figures


def _rates(episodes: int, evaluable: int, counts: dict[str, int]) -> dict[str, Any]:
    return {"episodes": episodes, "evaluable": evaluable, "counts": counts,
            "rates": {m: round(100 * n / evaluable, 1) if evaluable else None
                      for m, n in counts.items()}}


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
    return sum(1 for _ in _notifications(app, Episode.Opened.TOPIC))


def request(app: OutcomesApplication, log: RescoringLog, store: RescoringStore, *,
            criteria: str, params: dict[str, Any] | None, clinic_id: str | None,
            as_of: datetime | None, recorded_by: str) -> Rescoring:
    """Record a run (Rescoring.Requested, in the runs' own log) and register it in the store.
    Raises UnknownCriteriaError or InvalidCriteriaParameterError."""
    chosen = app.criteria_set(criteria, params)
    run = Rescoring._create(Rescoring.Requested, id=uuid4(), criteria=chosen.describe(),
                            clinic_id=clinic_id, as_of=as_of or app.clock(),
                            recorded_by=recorded_by)
    log.save(run)
    store.create(run)
    return run


def execute(app: OutcomesApplication, log: RescoringLog, store: RescoringStore, run_id: UUID,
            progress: Progress | None = None, stop: threading.Event | None = None) -> str:
    """Run (or resume) a shadow run; returns its final status: ``completed`` or
    ``interrupted`` (``stop`` set, or KeyboardInterrupt: results so far are kept). Reads the
    episodes' store; writes only the results store and the run's log."""
    run: Rescoring = log.repository.get(run_id)
    state = store.run(run_id)
    assert state is not None, "request() registers the run first"
    criteria, total = run.criteria_set, count_episodes(app)
    processed, last = state["processed"], state["last_episode_id"]
    batch: list[EpisodeRescore] = []
    status = "completed"
    try:
        for events in episode_streams(app, after=last):
            if stop is not None and stop.is_set():
                status = "interrupted"
                break
            result = replay(events, criteria, run.as_of)
            processed, last = processed + 1, str(events[0].originator_id)
            if result is not None and run.clinic_id in (None, result.clinic_id):
                batch.append(result)
            if processed % BATCH == 0:
                store.save_batch(run_id, criteria.hash, batch, processed, total, last)
                batch = []
                if progress:
                    progress(processed, total)
    except KeyboardInterrupt:
        status = "interrupted"
    store.save_batch(run_id, criteria.hash, batch, processed, total, last)
    if progress:
        progress(processed, total)
    if status == "interrupted":
        store.finish(run_id, status)
        return status
    figures = store.figures(run_id)
    final = store.run(run_id) or {}
    store.finish(run_id, status, figures)
    if not run.completed:
        run.trigger_event(Rescoring.Completed, episodes=final.get("episodes", 0),
                          changed=final.get("changed", 0), figures=figures)
        log.save(run)
    return status
