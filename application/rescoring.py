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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import structlog
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from application.environment import ExplicitEnvironment
from application.episode_streams import _readable, count_episodes, episode_streams
from application.outcomes import OutcomesApplication
from domain.criteria.sets import CriteriaSet
from domain.episode import Episode
from domain.rescoring import EpisodeFacts, EpisodeRescore, Rescoring, replay, rescore
from projections.base import topics_of
from projections.errors import ViewUnavailable
from projections.fold_inputs import FoldInputsView, facts
from projections.rescorings import RescoringStore
from projections.runner import ReadModels
from projections.storage import PostgresViewStore, SQLiteViewStore

Progress = Callable[[int, int], None]  # (episodes processed, episodes in the store)
Status = Literal["completed", "interrupted"]
BATCH = 500  # results saved (with the range's resume point) every BATCH episodes
EPISODES_PER_WORKER = 2_000  # fewer episodes than this per worker: not worth starting one
MAX_LAG = 10_000  # the fold-inputs read model is read only this close to its store's end
EPISODE_TOPICS = topics_of(Episode)  # the events that change an episode's fold inputs


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
                 store: RescoringStore, inputs: ReadModels | None = None) -> None:
        self.app, self.log, self.store = app, log, store
        # The fold-inputs read model (ADR 0028), when the run may read it.
        self.inputs = inputs if inputs is not None and FoldInputsView.name in inputs.classes \
            else None
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
        (at most one worker per unfinished range). Episodes are re-scored from the fold-inputs
        read model where it answers (``inputs``; ADR 0028), else from their events. Reads the
        episodes' store and the read model (which it catches up); writes only the results
        store and the run's log. Raises RuntimeError when a worker process fails."""
        run: Rescoring = self.log.repository.get(run_id)
        state = self.store.run(run_id)
        assert state is not None, "request() registers the run first"
        total = count_episodes(self.app)
        count = default_workers(total) if workers is None else max(1, workers)
        if self.store.spec is None or not shareable(self.app) or (
                state["last_episode_id"] and not self.store.ranges(run_id)):
            count = 1  # (the last: a run interrupted before ranges existed resumes as one)
        self.store.create_ranges(run_id, id_ranges(count), total, state["last_episode_id"],
                                 state["processed"])
        pending = [r for r in self.store.ranges(run_id) if not r["done"]]
        view = self._fold_inputs() if pending else None
        job = RangeJob(run_id, run.criteria, run.as_of, run.clinic_id,
                       _store_spec(self.inputs.store) if view and self.inputs else None)
        count = min(count, len(pending))
        if count > 1:
            finished = self._in_workers(job, pending, count, total, progress, stop)
        else:
            finished = all(replay_range(self.app, self.store, job, r, stop,
                                        (lambda: self._tick(run_id, total, progress)), view)
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

    def _fold_inputs(self) -> FoldInputsView | None:
        """The fold-inputs read model, caught up, or None: the run reads the events (no such
        read model; refused; unreachable; or still ``MAX_LAG`` notifications behind)."""
        if self.inputs is None:
            return None
        try:
            self.inputs.catch_up([FoldInputsView.name])
            view = _fold_inputs(self.inputs)
        except (ViewUnavailable, OperationalError):
            return None
        lag = (self.app.recorder.max_notification_id() or 0) - view.position(self.app.name)
        return view if lag <= MAX_LAG else None

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
    (``CriteriaSet.describe``), as-of (transaction time), clinic (None: every clinic) and how
    to open the fold-inputs read model (None: read the events)."""

    run_id: UUID
    criteria: dict[str, Any]
    as_of: datetime
    clinic_id: str | None
    views: tuple[Any, ...] | None = None


def _store_spec(store: Any) -> tuple[Any, ...] | None:
    if isinstance(store, PostgresViewStore):
        return ("postgres", store.env, store.schema)
    if isinstance(store, SQLiteViewStore) and store.folder is not None:
        return ("sqlite", str(store.folder))
    return None


def _open_views(app: OutcomesApplication, spec: tuple[Any, ...]) -> ReadModels:
    store = (PostgresViewStore(spec[1], spec[2]) if spec[0] == "postgres"
             else SQLiteViewStore(Path(spec[1])))
    return ReadModels.open(app, store, [FoldInputsView.name], create=False)


def _fold_inputs(models: ReadModels | None) -> FoldInputsView:
    assert models is not None
    view = models.view(FoldInputsView.name)
    assert isinstance(view, FoldInputsView)
    return view


def _stale(app: OutcomesApplication, position: int, after: str | None,
           until: str | None) -> set[str]:
    """The episodes in (after, until] with an event stored after ``position`` (the read
    model's): at most ``MAX_LAG`` notifications are read. Only the episodes' own events count:
    an erasure stored meanwhile is no episode (its episodes are dropped by ``is_erased``)."""
    stale: set[str] = set()
    start = position + 1
    while page := app.recorder.select_notifications(start=start, limit=1000,
                                                    topics=list(EPISODE_TOPICS)):
        for n in page:
            ident = str(n.originator_id)
            if (after is None or ident > after) and (until is None or ident <= until):
                stale.add(ident)
        start = page[-1].id + 1
    return stale


def _episodes(app: OutcomesApplication, view: FoldInputsView | None, job: RangeJob,
              after: str | None, until: str | None
              ) -> Iterator[tuple[str, EpisodeFacts | list[Episode.Event] | None]]:
    """Each readable episode in (after, until] in id order with what to re-score it from: its
    read-model facts when the row is current at the run's as-of, else its events (the scan of
    the events table without a read model; one episode's events when its row is missing,
    changed after the read model's position or after the as-of)."""
    if view is None:
        for events in episode_streams(app, after=after, until=until):
            yield str(events[0].originator_id), events
        return
    stale = _stale(app, view.position(app.name), after, until)
    rows = view.rows(after, until)
    row = next(rows, None)
    extra = iter(sorted(stale))
    pending = next(extra, None)
    while row is not None or pending is not None:
        if pending is not None and (row is None or pending <= row["episode_id"]):
            ident, current = pending, (row if row is not None
                                       and row["episode_id"] == pending else None)
            pending = next(extra, None)
            if current is not None:
                row = next(rows, None)
            yield ident, next(_readable(app, list(app.repository.event_store.get(UUID(ident)))),
                              None)
            continue
        assert row is not None
        ident, current, row = row["episode_id"], row, next(rows, None)
        if datetime.fromisoformat(current["updated_at"]) > job.as_of:
            yield ident, next(_readable(app, list(app.repository.event_store.get(UUID(ident)))),
                              None)
        elif not app.is_erased(UUID(ident)):
            yield ident, facts(current)


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
                 saved: Callable[[], None] | None = None,
                 view: FoldInputsView | None = None) -> bool:
    """Replay the episodes of one range (``RescoringStore.ranges`` row) from its resume point,
    from the fold-inputs read model ``view`` where it is current (else from the events),
    saving results every ``BATCH`` episodes; True when the range is done, False when ``stop``
    (anything with ``is_set()``) was set or KeyboardInterrupt came (results so far kept)."""
    criteria = CriteriaSet.from_description(job.criteria)
    batch: list[EpisodeRescore] = []
    read, last = 0, span["last_episode_id"]
    try:
        for ident, source in _episodes(app, view, job, last or span["after_id"],
                                       span["until_id"]):
            if source is None:  # erased
                continue
            if stop is not None and stop.is_set():
                break
            result = (rescore(source, criteria) if isinstance(source, EpisodeFacts)
                      else replay(source, criteria, job.as_of))
            read, last = read + 1, ident
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
    # The parent's application created the tables: workers starting together would race on
    # PostgreSQL's catalogue ("tuple concurrently updated") if each created them again.
    app = OutcomesApplication({**env, "CREATE_TABLE": "false"})
    store = RescoringStore.reopen(spec)
    models = _open_views(app, job.views) if job.views is not None else None
    try:
        view = _fold_inputs(models) if models is not None else None
        for span in spans:
            if not replay_range(app, store, job, span, halt, None, view):
                return
    finally:
        if models is not None:
            models.close()
        store.datastore.close()
        app.close()
