"""Shadow re-scoring runs: request one, execute (or resume) it, run it in the background.

A run reads every selected episode's events, replays each under other criteria
(``domain.rescoring.replay``) and keeps the would-be histories in the results store
(``projections.rescorings.RescoringStore``). The episodes' event store is never written; the
run's own record (``Rescoring.Requested``, ``Rescoring.Completed``) goes to ``RescoringLog``, an
event store of its own. Episodes are read one stream at a time (``episode_streams``), so memory
does not grow with their number.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import structlog
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from application.environment import ExplicitEnvironment
from application.episode_streams import count_episodes, episode_streams
from application.outcomes import OutcomesApplication
from domain.criteria.sets import CriteriaSet
from domain.rescoring import EpisodeRescore, Rescoring, replay
from projections.rescorings import RescoringStore

Progress = Callable[[int, int], None]  # (episodes processed, episodes in the store)
Status = Literal["completed", "interrupted"]
BATCH = 500  # results saved (with the range's resume point) every BATCH episodes
EPISODES_PER_WORKER = 2_000  # fewer episodes than this per worker: not worth starting one


class RescoringLog(ExplicitEnvironment[UUID]):
    """Where shadow runs are recorded: an event store of their own, configured only by
    ``Settings`` (ADR 0010), so a shadow run leaves the episodes' event store exactly as it was."""

    name = "Rescorings"


@dataclass(frozen=True)
class RunRequested:
    """A requested run: its id, criteria ``{"id", "version", "hash"}``, clinic (None: every
    clinic) and as-of (transaction time, timezone-aware)."""

    run_id: UUID
    criteria: dict[str, str]
    clinic_id: str | None
    as_of: datetime
    status: str = "requested"


class ShadowRuns:
    """The shadow-run use cases over the episodes (``app``), the runs' log and the results
    store. Runs started with ``start`` execute in background threads, stopped by ``close``."""

    def __init__(self, app: OutcomesApplication, log: RescoringLog,
                 store: RescoringStore) -> None:
        self.app, self.log, self.store = app, log, store
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def request(self, *, criteria: str, params: Mapping[str, Any] | None = None,
                clinic_id: str | None = None, as_of: datetime | None = None,
                recorded_by: str) -> RunRequested:
        """Record a run (Rescoring.Requested, in the runs' own log) and register it in the
        store; ``as_of`` defaults to now. Raises UnknownCriteriaError or
        InvalidCriteriaParameterError (nothing is recorded then)."""
        chosen = self.app.criteria_set(criteria, params)
        run = Rescoring.request(criteria=chosen, clinic_id=clinic_id,
                                as_of=as_of or self.app.clock(), recorded_by=recorded_by)
        self.log.save(run)
        self.store.create(run)
        return RunRequested(run.id, chosen.ref(), run.clinic_id, run.as_of)

    def execute(self, run_id: UUID, progress: Progress | None = None,
                stop: threading.Event | None = None, workers: int | None = None) -> Status:
        """Run (or resume) a requested run; returns ``completed`` or ``interrupted`` (``stop``
        set, or KeyboardInterrupt: results so far are kept). The first execution splits the
        episode ids into one range per worker (``workers``; None: ``default_workers``; 1 when
        another process cannot open a store), each replayed by a process of its own and
        resumable on its own; one worker runs in this process. A resumed run keeps its ranges
        (at most one worker per unfinished range). Reads
        the episodes' store; writes only the results store and the run's log. Raises
        RuntimeError when a worker process fails."""
        run: Rescoring = self.log.repository.get(run_id)
        state = self.store.run(run_id)
        assert state is not None, "request() registers the run first"
        total = count_episodes(self.app)
        count = default_workers(total) if workers is None else max(1, workers)
        if self.store.spec is None or not shareable(self.app):
            count = 1
        self.store.create_ranges(run_id, id_ranges(count), total, state["last_episode_id"],
                                 state["processed"])
        pending = [r for r in self.store.ranges(run_id) if not r["done"]]
        job = RangeJob(run_id, run.criteria, run.as_of, run.clinic_id)
        count = min(count, len(pending))
        if count > 1:
            finished = self._in_workers(job, pending, count, total, progress, stop)
        else:
            finished = all(replay_range(self.app, self.store, job, r, stop,
                                        (lambda: self._tick(run_id, total, progress)))
                           for r in pending)
        self._tick(run_id, total, progress)
        if not finished:
            self.store.finish(run_id, "interrupted")
            return "interrupted"
        figures = self.store.figures(run_id)
        final = self.store.run(run_id) or {}
        self.store.finish(run_id, "completed", figures)
        if not run.completed:
            run.complete(episodes=final.get("episodes", 0), changed=final.get("changed", 0),
                         figures=figures)
            self.log.save(run)
        return "completed"

    def _tick(self, run_id: UUID, total: int, progress: Progress | None) -> None:
        if progress:
            progress((self.store.run(run_id) or {}).get("processed", 0), total)

    def _in_workers(self, job: RangeJob, pending: list[dict[str, Any]], count: int, total: int,
                    progress: Progress | None, stop: threading.Event | None) -> bool:
        """Replay ``pending`` ranges in ``count`` worker processes; whether all finished."""
        context = multiprocessing.get_context("spawn")  # no fork of open connections
        halt = context.Event()
        processes = [context.Process(
            target=_worker, name=f"rescoring-{job.run_id}-{n}", daemon=True,
            args=(dict(self.app.env), self.store.spec, job, pending[n::count], halt))
            for n in range(count)]
        for process in processes:
            process.start()
        try:
            while any(p.is_alive() for p in processes):
                time.sleep(0.2)
                if stop is not None and stop.is_set():
                    halt.set()
                self._tick(job.run_id, total, progress)
        except KeyboardInterrupt:
            halt.set()
        for process in processes:
            process.join()
        if any(p.exitcode for p in processes) and not halt.is_set():
            raise RuntimeError("a re-scoring worker process failed")
        return all(r["done"] for r in self.store.ranges(job.run_id))

    def start(self, run_id: UUID) -> None:
        """Execute a requested run in a background thread (interrupted by ``close``; a run that
        fails is marked ``failed`` and its error type logged)."""
        def run() -> None:
            try:
                self.execute(run_id, stop=self._stop)
            except Exception as exc:
                structlog.get_logger("rescoring").error("re-scoring failed",
                                                        error_type=type(exc).__name__)
                self.store.finish(run_id, "failed")

        thread = threading.Thread(target=run, name=f"rescoring-{run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = 30) -> None:
        """Interrupt the background runs and wait for them (at most ``timeout`` s each)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)


@dataclass(frozen=True)
class RangeJob:
    """What a worker needs to replay a range of a run: the run's id, criteria description
    (``CriteriaSet.describe``), as-of (transaction time) and clinic (None: every clinic)."""

    run_id: UUID
    criteria: dict[str, Any]
    as_of: datetime
    clinic_id: str | None


def id_ranges(count: int) -> list[tuple[str | None, str | None]]:
    """The UUID space split into ``count`` equal ranges (after, until] as canonical UUID text
    (None: unbounded); random (version 4) episode ids fall evenly into them."""
    bounds = [str(UUID(int=k * 2**128 // count)) for k in range(1, count)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def default_workers(total: int) -> int:
    """Worker processes for a run over ``total`` episodes: one per core (at most 4), and none
    beyond one per ``EPISODES_PER_WORKER`` episodes (starting a process costs about a second)."""
    return max(1, min(os.cpu_count() or 1, 4, total // EPISODES_PER_WORKER))


def shareable(app: OutcomesApplication) -> bool:
    """Whether another process can open ``app``'s event store (not an in-memory one)."""
    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        return True
    return (isinstance(recorder, SQLiteApplicationRecorder)
            and not recorder.datastore.pool.is_sqlite_memory_mode)


def replay_range(app: OutcomesApplication, store: RescoringStore, job: RangeJob,
                 span: Mapping[str, Any], stop: Any = None,
                 saved: Callable[[], None] | None = None) -> bool:
    """Replay the episodes of one range (``RescoringStore.ranges`` row) from its resume point,
    saving results every ``BATCH`` episodes; True when the range is done, False when ``stop``
    (anything with ``is_set()``) was set or KeyboardInterrupt came (results so far kept)."""
    criteria = CriteriaSet.from_description(job.criteria)
    batch: list[EpisodeRescore] = []
    read, last = 0, span["last_episode_id"]
    try:
        for events in episode_streams(app, after=last or span["after_id"],
                                      until=span["until_id"]):
            if stop is not None and stop.is_set():
                break
            result = replay(events, criteria, job.as_of)
            read, last = read + 1, str(events[0].originator_id)
            if result is not None and job.clinic_id in (None, result.clinic_id):
                batch.append(result)
            if read == BATCH:
                store.save_range(job.run_id, span["range_no"], criteria.hash, batch, read, last,
                                 done=False)
                batch, read = [], 0
                if saved:
                    saved()
        else:
            store.save_range(job.run_id, span["range_no"], criteria.hash, batch, read, last,
                             done=True)
            return True
    except KeyboardInterrupt:
        pass
    store.save_range(job.run_id, span["range_no"], criteria.hash, batch, read, last, done=False)
    return False


def _worker(env: dict[str, str], spec: tuple[Any, ...], job: RangeJob,
            spans: list[dict[str, Any]], halt: Any) -> None:
    """A worker process: replay ``spans`` (ranges) in turn until done or ``halt`` is set."""
    app = OutcomesApplication(env)
    store = RescoringStore.reopen(spec)
    try:
        for span in spans:
            if not replay_range(app, store, job, span, halt):
                return
    finally:
        store.datastore.close()
        app.close()
