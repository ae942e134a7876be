"""The results store of shadow re-scoring runs: each run's status and progress, and every
episode's would-be history, keyed by run and criteria hash (``views/rescorings.sqlite``, or the
tables ``rescoring_runs`` and ``rescoring_results`` in the ledger's PostgreSQL schema).

A read-side store: written only by the run use case (``application.rescoring``), which keeps its
last episode id with every batch of results, so an interrupted run resumes where it stopped; read
by the API and the CLI. Each result keeps the episode's outcome on both sides
(``domain.rules.EpisodeOutcome``); a run's figures are ``domain.rules.cohort_figures`` over them,
the same function the clinic's figures use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
from eventsourcing.sqlite import SQLiteDatastore

from domain.rescoring import EpisodeRescore, Rescoring
from domain.rules import EpisodeOutcome, cohort_figures
from projections.base import (
    ViewCursor,
    outcome_from_json,
    postgres_ddl,
    postgres_statement,
    to_json,
)
from trust.files import create_private

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
    "CREATE TABLE IF NOT EXISTS rescoring_ranges (run_id TEXT NOT NULL, range_no INTEGER NOT NULL, "
    "after_id TEXT, until_id TEXT, last_episode_id TEXT, processed INTEGER NOT NULL, "
    "done INTEGER NOT NULL, PRIMARY KEY (run_id, range_no))",
)

_ENCODER = msgspec.json.Encoder(order="sorted")


def _json(value: Any) -> str:
    """A result's JSON column: keys sorted, non-ASCII as is, compact (no spaces). The values
    are JSON data already (dates as ISO text, ``domain.rescoring.EpisodeRescore``), so they read
    back (``json.loads``) exactly as ``projections.base.to_json``'s text of them does; msgspec
    writes them several times faster."""
    return _ENCODER.encode(value).decode()


_OUTCOME = msgspec.json.Decoder(EpisodeOutcome)


def _outcome(text: str) -> EpisodeOutcome:
    """A stored side's outcome: msgspec parses it into the dataclass (keys it does not know are
    left out, missing ones take defaults, as ``outcome_from_json`` does); what it refuses goes
    to ``outcome_from_json``."""
    try:
        return _OUTCOME.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return outcome_from_json(text)


class RescoringStore:
    """The runs and their per-episode results (SQLite: ``folder/rescorings.sqlite``, or a private
    in-memory database; PostgreSQL: ``on_postgres``). The tables are created unless
    ``create=False`` (idempotent)."""

    def __init__(self, folder: Path | None, *, datastore: Any = None, create: bool = True) -> None:
        self.postgres = datastore is not None
        # How another process opens the same store (``reopen``); None: it cannot (in memory).
        self.spec: tuple[Any, ...] | None = ("sqlite", str(folder)) if folder else None
        if datastore is None:
            name = (str(create_private(folder / "rescorings.sqlite")) if folder is not None
                    else f"file:rescorings-{uuid4().hex}?mode=memory&cache=shared")
            datastore = SQLiteDatastore(name, lock_timeout=10)
        self.datastore = datastore
        if create:
            self.create_tables()

    @classmethod
    def on_postgres(cls, env: Mapping[str, str], schema: str = "public", *,
                    create: bool = True) -> RescoringStore:
        """The store in the ledger's PostgreSQL schema (``env``: the library's ``POSTGRES_*``)."""
        from projections.storage import postgres_datastore
        store = cls(None, datastore=postgres_datastore(env, schema), create=create)
        store.spec = ("postgres", dict(env), schema)
        return store

    @classmethod
    def reopen(cls, spec: tuple[Any, ...]) -> RescoringStore:
        """The store ``spec`` (another store's ``spec``) names, opened in this process (a
        worker of a run); its tables already exist."""
        if spec[0] == "postgres":
            return cls.on_postgres(spec[1], spec[2], create=False)
        return cls(Path(spec[1]), create=False)

    def create_tables(self) -> None:
        """Create the tables if missing (serialised across processes on PostgreSQL)."""
        with self._cursor(commit=True) as cursor:
            if self.postgres:
                from projections.storage import lock_key
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (lock_key("outcomes-rescorings"),))
            for statement in _TABLES:
                cursor.execute(postgres_ddl(statement) if self.postgres else statement)

    @contextmanager
    def _cursor(self, *, commit: bool = False) -> Iterator[ViewCursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield ViewCursor(cursor, self.postgres)

    def create(self, run: Rescoring) -> None:
        with self._cursor(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO rescoring_runs (run_id, criteria, clinic_id, as_of, requested_by, "
                "requested_at, status, processed, episodes, changed) VALUES (?,?,?,?,?,?,?,0,0,0) "
                "ON CONFLICT DO NOTHING",
                (str(run.id), to_json({k: run.criteria[k] for k in ("id", "version", "hash")}),
                 run.clinic_id, run.as_of.isoformat(), run.recorded_by,
                 run.created_on.isoformat(), "requested"))

    def run(self, run_id: UUID) -> dict[str, Any] | None:
        """The run's status, progress, counts and figures, or None."""
        with self._cursor() as cursor:
            cursor.execute("SELECT * FROM rescoring_runs WHERE run_id = ?", (str(run_id),))
            row = cursor.fetchone()
        if row is None:
            return None
        data = {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        data["criteria"] = json.loads(data["criteria"])
        data["figures"] = json.loads(data["figures"]) if data["figures"] else None
        return data

    def changes(self, run_id: UUID, after: str = "", limit: int = 50
                ) -> tuple[list[dict[str, Any]], str | None]:
        """Episodes whose history would differ, in episode-id order after ``after``."""
        with self._cursor() as cursor:
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
        with self._cursor() as cursor:
            cursor.execute("SELECT * FROM rescoring_results WHERE run_id = ? AND episode_id = ?",
                           (str(run_id), str(episode_id)))
            row = cursor.fetchone()
        if row is None:
            return None
        data = {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        for name in ("criteria_now", "milestones_now", "milestones_new", "diff", "now", "new",
                     "outcome_new"):
            data[name] = json.loads(data[name]) if data[name] else None
        data["changed"] = bool(data["changed"])
        return data

    def save_batch(self, run_id: UUID, criteria_hash: str, results: list[EpisodeRescore],
                   processed: int, total: int, last_episode_id: str | None) -> None:
        """Results and the run's progress in one transaction (what makes a run resumable)."""
        with self._cursor(commit=True) as cursor:
            for r in results:
                cursor.execute(
                    "INSERT INTO rescoring_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING", self._row(run_id, criteria_hash, r))
            cursor.execute(
                "UPDATE rescoring_runs SET status = 'running', processed = ?, total = ?, "
                "last_episode_id = ?, episodes = (SELECT COUNT(*) FROM rescoring_results WHERE "
                "run_id = ?), changed = (SELECT COUNT(*) FROM rescoring_results WHERE run_id = ? "
                "AND changed = 1) WHERE run_id = ?",
                (processed, total, last_episode_id, str(run_id), str(run_id), str(run_id)))

    def ranges(self, run_id: UUID) -> list[dict[str, Any]]:
        """The run's episode-id ranges in order: ``range_no``, ``after_id`` and ``until_id``
        (the range is (after, until], canonical UUID text; None: unbounded), ``last_episode_id``
        (where it resumes), ``processed`` (episodes read) and ``done``; [] before the first
        execution."""
        with self._cursor() as cursor:
            cursor.execute("SELECT * FROM rescoring_ranges WHERE run_id = ? ORDER BY range_no",
                           (str(run_id),))
            rows = cursor.fetchall()
        return [{key: row[key] for key in row.keys()} | {"done": bool(row["done"])}  # noqa: SIM118
                for row in rows]

    def create_ranges(self, run_id: UUID, bounds: list[tuple[str | None, str | None]],
                      total: int, last_episode_id: str | None = None, processed: int = 0) -> None:
        """Split the run into ranges ``bounds`` ((after, until] each) unless it already is
        (idempotent); the first range starts at ``last_episode_id`` with ``processed`` episodes
        (a run interrupted before ranges existed). Records ``total`` (episodes in the store)."""
        with self._cursor(commit=True) as cursor:
            for n, (after, until) in enumerate(bounds):
                cursor.execute(
                    "INSERT INTO rescoring_ranges VALUES (?,?,?,?,?,?,0) ON CONFLICT DO NOTHING",
                    (str(run_id), n, after, until, last_episode_id if n == 0 else None,
                     processed if n == 0 else 0))
            cursor.execute("UPDATE rescoring_runs SET total = ? WHERE run_id = ?",
                           (total, str(run_id)))

    def save_range(self, run_id: UUID, range_no: int, criteria_hash: str,
                   results: list[EpisodeRescore], read: int, last_episode_id: str | None,
                   done: bool) -> None:
        """One range's next results, its resume point (``last_episode_id``, ``read`` more
        episodes) and whether it is ``done``, with the run's counts, in one transaction (what
        makes each range resumable on its own)."""
        rows = [self._row(run_id, criteria_hash, r) for r in results]
        with self._cursor(commit=True) as cursor:
            # Changed results first, then the others: each statement's count of inserted rows
            # (a result kept before a resume is not inserted again) gives the run's counts.
            changed = self._insert(cursor, [row for row in rows if row[4]])
            inserted = changed + self._insert(cursor, [row for row in rows if not row[4]])
            cursor.execute(
                "UPDATE rescoring_ranges SET processed = processed + ?, last_episode_id = ?, "
                "done = ? WHERE run_id = ? AND range_no = ?",
                (read, last_episode_id, int(done), str(run_id), range_no))
            cursor.execute(
                "UPDATE rescoring_runs SET status = 'running', processed = processed + ?, "
                "last_episode_id = COALESCE(?, last_episode_id), episodes = episodes + ?, "
                "changed = changed + ? WHERE run_id = ?",
                (read, last_episode_id, inserted, changed, str(run_id)))

    def _insert(self, cursor: ViewCursor, rows: list[tuple[Any, ...]]) -> int:
        """Insert result ``rows`` in one ``executemany`` (those already kept are left as they
        are); how many were inserted."""
        if not rows:
            return 0
        statement = ("INSERT INTO rescoring_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                     "ON CONFLICT DO NOTHING")
        raw = getattr(cursor.cursor, "sqlite_cursor", cursor.cursor)
        raw.executemany(postgres_statement(statement) if self.postgres else statement, rows)
        return int(raw.rowcount)

    @staticmethod
    def _row(run_id: UUID, criteria_hash: str, r: EpisodeRescore) -> tuple[Any, ...]:
        """One result as the table keeps it (columns in table order); the JSON columns by
        ``_json``."""
        return (str(run_id), str(r.episode_id), criteria_hash, r.clinic_id, int(r.changed),
                r.stage_now, r.stage_new, _json(r.criteria_now),
                _json(vars(r.milestones_now)), _json(vars(r.milestones_new)),
                _json(r.diff), _json(r.now), _json(r.new),
                _json(r.outcome_new) if r.outcome_new is not None else None, r.error)

    def finish(self, run_id: UUID, status: str, figures: dict[str, Any] | None = None) -> None:
        with self._cursor(commit=True) as cursor:
            cursor.execute("UPDATE rescoring_runs SET status = ?, figures = ?, finished_at = ? "
                           "WHERE run_id = ?", (status, to_json(figures) if figures else None,
                                                datetime.now(UTC).isoformat(), str(run_id)))

    def figures(self, run_id: UUID) -> dict[str, Any]:
        """The run's cohort figures (``domain.rules.CohortFigures`` as JSON data) under the
        episodes' current criteria (``now``) and under the run's (``new``), side by side; rows
        are streamed, so memory grows only with the day counts the medians need."""
        figures = {}
        for side in ("now", "new"):
            with self._cursor() as cursor:
                cursor.execute(f"SELECT milestones_{side} AS milestones FROM rescoring_results "
                               f"WHERE run_id = ?", (str(run_id),))
                figures[side] = asdict(cohort_figures(
                    _outcome(row["milestones"]) for row in iter(cursor.fetchone, None)))
        return figures

    def drop_episodes(self, episode_ids: list[str]) -> int:
        """Delete every run's results for ``episode_ids`` (an erasure, application.erasure) and
        recount the runs they were in (their episodes, changed, and the figures of finished
        runs). Returns how many results were deleted. Idempotent."""
        if not episode_ids:
            return 0
        marks = ", ".join("?" * len(episode_ids))
        with self._cursor(commit=True) as cursor:
            cursor.execute(f"SELECT DISTINCT run_id FROM rescoring_results WHERE episode_id IN "
                           f"({marks})", list(episode_ids))
            runs = [row["run_id"] for row in cursor.fetchall()]
            cursor.execute(f"SELECT COUNT(*) AS n FROM rescoring_results WHERE episode_id IN "
                           f"({marks})", list(episode_ids))
            deleted = int(cursor.fetchone()["n"])
            cursor.execute(f"DELETE FROM rescoring_results WHERE episode_id IN ({marks})",
                           list(episode_ids))
            for run_id in runs:
                cursor.execute(
                    "UPDATE rescoring_runs SET episodes = (SELECT COUNT(*) FROM "
                    "rescoring_results WHERE run_id = ?), changed = (SELECT COUNT(*) FROM "
                    "rescoring_results WHERE run_id = ? AND changed = 1) WHERE run_id = ?",
                    (run_id, run_id, run_id))
        for run_id in runs:
            with self._cursor(commit=True) as cursor:
                cursor.execute("SELECT figures FROM rescoring_runs WHERE run_id = ?", (run_id,))
                row = cursor.fetchone()
            if row is not None and row["figures"]:
                figures = self.figures(UUID(run_id))
                with self._cursor(commit=True) as cursor:
                    cursor.execute("UPDATE rescoring_runs SET figures = ? WHERE run_id = ?",
                                   (to_json(figures), run_id))
        return deleted
