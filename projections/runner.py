"""Keeping the read models up to date: catch up from each one's tracked position.

SQLite has no ``subscribe()`` in eventsourcing 9.5, so ``ProjectionRunner`` cannot follow it
(ADR 0007). Instead ``ReadModels.catch_up()`` reads the notifications after the lowest tracked
position (``select_notifications``), decodes each once with the application's mapper, and hands
each read model the events it has not processed, in batches, each batch with its tracking
position in one transaction. The API catches up the read model a request reads before reading
it, so a client always reads its own writes (and other processes'), and a background thread
catches up every second so the read models stay current when nobody reads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, OperationalError
from eventsourcing.utils import Environment

from projections.audit import AuditView
from projections.base import ReadModel
from projections.cohort import CohortView
from projections.episodes import EpisodesView
from projections.stages import StagesView

READ_MODELS: dict[str, type[ReadModel]] = {
    view.name: view for view in (EpisodesView, StagesView, AuditView, CohortView)}
V = TypeVar("V", bound=ReadModel)
log = structlog.get_logger("projections")
Progress = Callable[[int, int], None]  # (processed position, last position)


def open_view(view_class: type[ReadModel], folder: Path | None) -> ReadModel:
    """Open (creating tables if needed) one read model: ``folder/<name>.sqlite`` (``<name>-vN``
    from version 2), or a private in-memory database when ``folder`` is None."""
    file_name = view_class.name + (f"-v{view_class.version}" if view_class.version > 1 else "")
    db_name = (str(folder / f"{file_name}.sqlite") if folder is not None
               else f"file:{view_class.name}-{uuid4().hex}?mode=memory&cache=shared")
    factory = InfrastructureFactory.construct(Environment(view_class.name, {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db_name,
        "SQLITE_LOCK_TIMEOUT": "10"}))
    view = factory.tracking_recorder(view_class)
    assert isinstance(view, view_class)
    return view


class ReadModels:
    """The read models of one application (``views`` by name), caught up on demand."""

    batch_size = 500

    def __init__(self, app: Application[Any], views: dict[str, ReadModel]) -> None:
        self.app, self.views = app, views
        self._lock = threading.Lock()

    @classmethod
    def open(cls, app: Application[Any], folder: Path | None) -> ReadModels:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        return cls(app, {name: open_view(v, folder) for name, v in READ_MODELS.items()})

    @property
    def episodes(self) -> EpisodesView:
        return self._view("episodes", EpisodesView)

    @property
    def stages(self) -> StagesView:
        return self._view("stages", StagesView)

    @property
    def audit(self) -> AuditView:
        return self._view("audit", AuditView)

    @property
    def cohort(self) -> CohortView:
        return self._view("cohort", CohortView)

    def _view(self, name: str, view_class: type[V]) -> V:
        view = self.views[name]
        assert isinstance(view, view_class)
        return view

    def catch_up(self, names: list[str] | None = None, progress: Progress | None = None) -> int:
        """Process every stored event the named read models (default all) have not; returns
        how many events were read. Safe to call from several threads and processes."""
        views = {n: self.views[n] for n in (names or list(self.views))}
        with self._lock:
            positions = {n: v.position(self.app.name) for n, v in views.items()}
            start, read = min(positions.values(), default=0), 0
            last = self.app.recorder.max_notification_id() or 0
            while start < last:
                notifications = self.app.recorder.select_notifications(
                    start=start, limit=self.batch_size, inclusive_of_start=False)
                if not notifications:
                    break
                batch = [(self.app.mapper.to_domain_event(n), n.id) for n in notifications]
                for name, view in views.items():
                    pending = [(e, p) for e, p in batch if p > positions[name]]
                    # Another process sharing the view got there first: its rows stand, and
                    # this batch rolled back; carry on from the position it recorded.
                    with contextlib.suppress(IntegrityError, OperationalError):
                        view.process(self.app.name, pending)
                    positions[name] = view.position(self.app.name)
                start, read = notifications[-1].id, read + len(notifications)
                if progress:
                    progress(start, last)
            return read

    def rebuild(self, name: str, progress: Progress | None = None) -> int:
        """Drop the rows and position of one read model and rebuild it from position 0."""
        with self._lock:
            self.views[name].clear()
        return self.catch_up([name], progress)

    def follow(self, interval: float) -> Callable[[], None]:
        """Catch up every ``interval`` seconds in a daemon thread, so the read models stay
        current when nobody reads; returns the function that stops it."""
        stopped = threading.Event()

        def loop() -> None:
            while not stopped.wait(interval):
                try:
                    self.catch_up()
                except Exception as exc:  # keep following; the next read retries
                    log.error("catch-up failed", error_type=type(exc).__name__)

        thread = threading.Thread(target=loop, name="read-model-catch-up", daemon=True)
        thread.start()

        def stop() -> None:
            stopped.set()
            thread.join(timeout=10)
        return stop

    def open_episodes(self, clinic_id: str) -> Iterator[UUID]:
        """The ids of a clinic's open episodes, in opening order (the episodes read model,
        caught up first)."""
        self.catch_up(["episodes"])
        after: int | None = 0
        while after is not None:
            page, after = self.episodes.find(clinic_id=clinic_id, after=after, limit=500)
            yield from (UUID(s["episode_id"]) for s in page if s["closed_on"] is None)

    def status(self) -> dict[str, dict[str, int]]:
        """Each read model's tracked position and lag (events stored but not yet processed)."""
        last = self.app.recorder.max_notification_id() or 0
        return {name: {"position": (p := view.position(self.app.name)), "lag": last - p}
                for name, view in self.views.items()}
