"""Shadow re-scoring runs: request one, execute (or resume) it, run it in the background.

A run reads every selected episode's events, replays each under other criteria
(``domain.rescoring.replay``) and keeps the would-be histories in the results store
(``projections.rescorings.RescoringStore``). The episodes' event store is never written; the
run's own record (``Rescoring.Requested``, ``Rescoring.Completed``) goes to ``RescoringLog``, an
event store of its own. Episodes are read one stream at a time (``episode_streams``), so memory
does not grow with their number.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import structlog

from application.environment import ExplicitEnvironment
from application.episode_streams import count_episodes, episode_streams
from application.outcomes import OutcomesApplication
from domain.rescoring import EpisodeRescore, Rescoring, replay
from projections.rescorings import RescoringStore

Progress = Callable[[int, int], None]  # (episodes processed, episodes in the store)
Status = Literal["completed", "interrupted"]
BATCH = 500  # results saved (with the resume point) every BATCH episodes


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
                stop: threading.Event | None = None) -> Status:
        """Run (or resume) a requested run; returns ``completed`` or ``interrupted`` (``stop``
        set, or KeyboardInterrupt: results so far are kept). Reads the episodes' store; writes
        only the results store and the run's log."""
        run: Rescoring = self.log.repository.get(run_id)
        state = self.store.run(run_id)
        assert state is not None, "request() registers the run first"
        criteria, total = run.criteria_set, count_episodes(self.app)
        processed, last = state["processed"], state["last_episode_id"]
        batch: list[EpisodeRescore] = []
        status: Status = "completed"
        try:
            for events in episode_streams(self.app, after=last):
                if stop is not None and stop.is_set():
                    status = "interrupted"
                    break
                result = replay(events, criteria, run.as_of)
                processed, last = processed + 1, str(events[0].originator_id)
                if result is not None and run.clinic_id in (None, result.clinic_id):
                    batch.append(result)
                if processed % BATCH == 0:
                    self.store.save_batch(run_id, criteria.hash, batch, processed, total, last)
                    batch = []
                    if progress:
                        progress(processed, total)
        except KeyboardInterrupt:
            status = "interrupted"
        self.store.save_batch(run_id, criteria.hash, batch, processed, total, last)
        if progress:
            progress(processed, total)
        if status == "interrupted":
            self.store.finish(run_id, status)
            return status
        figures = self.store.figures(run_id)
        final = self.store.run(run_id) or {}
        self.store.finish(run_id, status, figures)
        if not run.completed:
            run.complete(episodes=final.get("episodes", 0), changed=final.get("changed", 0),
                         figures=figures)
            self.log.save(run)
        return status

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
