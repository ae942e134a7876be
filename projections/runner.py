"""Keeping the read models up to date, on both stores (ADR 0007, ADR 0018).

``ReadModels`` holds the live generation of each read model of one event store and answers
where each stands (``position``, ``wait``, ``status``). Two ways keep them current:

* inline (SQLite and the in-memory store, ``make run``): the API catches up the read model a
  request reads before reading it (``catch_up([name])``): it reads the notifications after the
  view's tracked position (the view's topics, filtered in the database), decodes them with the
  application's mapper and hands them to the view in batches of ``batch_size``, rows, tracking
  and fingerprint in one transaction. A reader whose catch-up meets another thread's waits for
  it (a lock per read model, never skipped), and a batch another process committed first is
  simply read again from the new position: the read returns only once the view has processed
  what was stored when it asked. A read never waits for other read models.
* runners (PostgreSQL): ``run(names, settings, stop_event)`` (``outcomes projections run``)
  drives each read model with the library's ``ProjectionRunner`` (a subscription: LISTEN/NOTIFY),
  or on SQLite with a polling loop; one runner per read model (``ViewStore.runner_lock``), a
  watchdog, and it follows a rebuild's switch to a new generation.

A view whose position is ahead of its store, or whose fingerprint (the originator id and version
of its last processed notification) differs from the store's notification at that position, was
built from another store (a restore): it is refused (``ViewUnavailable``) until rebuilt.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.projection import BaseProjectionRunner, Projection, ProjectionRunner
from eventsourcing.utils import Environment, EnvType

from projections.access_log import AccessLogView
from projections.audit import AuditView
from projections.base import ReadModel
from projections.cohort import CohortView
from projections.episodes import EpisodesView
from projections.errors import ViewUnavailable
from projections.fold_inputs import FoldInputsView
from projections.stages import StagesView
from projections.storage import SQLiteViewStore, ViewStore, wait_until

READ_MODELS: dict[str, type[ReadModel]] = {
    view.name: view for view in (EpisodesView, StagesView, AuditView, CohortView, FoldInputsView)}
ACCESS_MODELS: dict[str, type[ReadModel]] = {AccessLogView.name: AccessLogView}
V = TypeVar("V", bound=ReadModel)
log = structlog.get_logger("projections")
Progress = Callable[[int, int], None]  # (processed position, last position)


def open_view(view_class: type[ReadModel], folder: Path | None) -> ReadModel:
    """Open (creating tables if needed) generation 1 of one read model on SQLite:
    ``folder/<name>.sqlite`` (``<name>-vN`` from version 2), or a private in-memory database
    when ``folder`` is None."""
    return SQLiteViewStore(folder).open(view_class, 1, create=True)


class ViewProjection(Projection[Any]):
    """A read model as the library's projection: ``name`` and ``topics`` are the view's; each
    event is applied with its tracking in one transaction (``ReadModel.process``). An event that
    another process has already processed (IntegrityError) is skipped."""

    def __init__(self, view: ReadModel) -> None:
        super().__init__(view)
        self.name, self.topics = view.name, view.topics

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        with contextlib.suppress(IntegrityError):
            self.view.process(tracking.application_name,
                              [(domain_event, tracking.notification_id)])


class ViewRunner(ProjectionRunner[Any, Any]):
    """The library's ``ProjectionRunner`` over a view we opened (its generation's schema), with
    an environment that is exactly ``env`` (``os.environ`` is never read, ADR 0010)."""

    def __init__(self, *, application_class: type[Any], view: ReadModel, env: EnvType) -> None:
        self.view = view
        self.projection = ViewProjection(view)
        BaseProjectionRunner.__init__(self, projection=self.projection,
                                      application_class=application_class,
                                      tracking_recorder=cast(TrackingRecorder, view),
                                      topics=self.projection.topics, env=env)

    @staticmethod
    def _construct_env(name: str, env: EnvType | None = None) -> Environment:
        return Environment(name, dict(env or {}))


class _Live:
    """One read model's live generation in this process (swapped when the catalog changes)."""

    def __init__(self, generation: int, view: ReadModel) -> None:
        self.generation, self.view = generation, view
        self.refused: str | None = None
        self.logged = False


class _LiveViews(Mapping[str, ReadModel]):
    """``ReadModels.views``: name -> the live view (looked up on each access)."""

    def __init__(self, models: ReadModels) -> None:
        self.models = models

    def __getitem__(self, name: str) -> ReadModel:
        if name not in self.models.classes:
            raise KeyError(name)
        return self.models.view(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.models.classes)

    def __len__(self) -> int:
        return len(self.models.classes)


class ReadModels:
    """The read models of one application (``app``: its event store), kept in ``store``.

    Build with ``open(app, store)``; ``ReadModels(app, {name: view})`` keeps fixed views without
    generations (tests, and views opened with ``open_view``)."""

    batch_size = 500

    def __init__(self, app: Application[Any], views: dict[str, ReadModel] | None = None, *,
                 store: ViewStore | None = None,
                 classes: Mapping[str, type[ReadModel]] | None = None) -> None:
        self.app, self.store = app, store
        fixed = views or {}
        self.classes: dict[str, type[ReadModel]] = dict(
            classes or {n: _declared(v) for n, v in fixed.items()})
        self._live: dict[str, _Live] = {n: _Live(1, v) for n, v in fixed.items()}
        self._retired: list[ReadModel] = []
        self._locks = {name: threading.Lock() for name in self.classes}
        self._swap = threading.Lock()
        self.views: Mapping[str, ReadModel] = _LiveViews(self)
        self.rebuilding = False  # refusals are expected (see ``open``)

    @classmethod
    def open(cls, app: Application[Any], store: ViewStore | Path | None,
             names: Sequence[str] | None = None, *, create: bool = True,
             rebuilding: bool = False) -> ReadModels:
        """The read models ``names`` (default the episodes' five, or ``access-log`` when ``app``
        is the access log) of ``app`` in ``store`` (a ViewStore, or a SQLite folder / None for
        in-memory databases). ``create``: create missing tables (safe under concurrency);
        False opens only. Each view is checked against the store (refused if it does not
        match; see ``status``); a refusal is logged as an error, or as information when
        ``rebuilding`` (``projections rebuild``, ``restore``: the views are about to be rebuilt)."""
        if not isinstance(store, ViewStore):
            store = SQLiteViewStore(store)
        known = {**READ_MODELS, **ACCESS_MODELS}
        if names is None:
            names = list(ACCESS_MODELS if app.name == "AccessLog" else READ_MODELS)
        models = cls(app, store=store, classes={n: known[n] for n in names})
        models.rebuilding = rebuilding
        if create:
            models.create_tables()
        for name in names:
            with contextlib.suppress(ViewUnavailable):
                models.view(name)
        return models

    def create_tables(self) -> None:
        """Create the tables of every read model's live generation (idempotent; serialised
        across processes; what ``outcomes db init`` runs)."""
        assert self.store is not None
        self.store.create_catalog()
        for name, view_class in self.classes.items():
            generation = self.store.live(view_class)
            view = self.store.open(view_class, generation, create=True)
            self._install(name, generation, view)

    def _install(self, name: str, generation: int, view: ReadModel) -> _Live:
        """Make ``view`` (generation ``generation``) this process's live view of ``name``."""
        with self._swap:
            old = self._live.get(name)
            if old is not None:
                self._retired.append(old.view)  # closed at close(): a reader may hold it
            live = _Live(generation, view)
            live.refused = self._check(name, view)
            self._live[name] = live
        self._log_refusal(name, live)
        return live

    # -- the live views ---------------------------------------------------------------------

    def view(self, name: str) -> ReadModel:
        """The live generation of read model ``name``. Raises ViewUnavailable when the view is
        refused (ahead of its store, or built from another store), KeyError for an unknown
        name."""
        live = self._current(name)
        if live.refused is not None:
            raise ViewUnavailable(name, live.refused)
        return live.view

    def _current(self, name: str) -> _Live:
        view_class = self.classes[name]
        live = self._live.get(name)
        if self.store is None:
            assert live is not None
            return live
        generation = self.store.live(view_class)
        if live is not None and live.generation == generation:
            return live
        return self._install(name, generation, self.store.open(view_class, generation,
                                                                 create=False))

    def _view(self, name: str, view_class: type[V]) -> V:
        view = self.view(name)
        assert isinstance(view, view_class)
        return view

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

    # -- where the views stand ----------------------------------------------------------------

    def _check(self, name: str, view: ReadModel) -> str | None:
        """Why ``view`` does not match the store (None when it does)."""
        position = view.position(self.app.name)
        last = self.app.recorder.max_notification_id() or 0
        if position > last:
            return f"ahead of its event store: position {position}, the store ends at {last}"
        fingerprint = view.fingerprint(self.app.name)
        if fingerprint is None or fingerprint[0] != position or position == 0:
            return None
        found = self.app.recorder.select_notifications(start=position, stop=position, limit=1)
        if not found or (str(found[0].originator_id), found[0].originator_version) != (
                str(UUID(str(fingerprint[1]))), fingerprint[2]):
            return (f"built from another event store: the notification at position {position} "
                    f"is not the one it processed")
        return None

    def _log_refusal(self, name: str, live: _Live) -> None:
        if live.refused is not None and not live.logged:
            live.logged = True
            report = log.info if self.rebuilding else log.error
            report("read model refused", view=name, reason=live.refused,
                   position=live.view.position(self.app.name))

    def verify(self, name: str) -> str | None:
        """Check read model ``name`` against its store now (at start-up and every catch-up);
        returns the refusal reason (also logged once) or None."""
        live = self._current(name)
        if live.refused is None:
            live.refused = self._check(name, live.view)
            self._log_refusal(name, live)
        return live.refused

    def position(self, name: str) -> int:
        """The last position read model ``name`` processed (0 before any)."""
        return self._current(name).view.position(self.app.name)

    def _processed(self, view: ReadModel, position: int) -> bool:
        """Whether ``view`` has processed every event of its topics up to ``position``."""
        done = view.position(self.app.name)
        if done >= position:
            return True
        return not self.app.recorder.select_notifications(
            start=done, stop=position, limit=1, topics=view.topics, inclusive_of_start=False)

    def wait(self, name: str, position: int, timeout: float) -> bool:
        """True once read model ``name`` has processed ``position`` (within ``timeout``
        seconds), else False; never raises on timeout (ViewUnavailable for a refused view)."""
        return wait_until(lambda: self._processed(self.view(name), position), timeout)

    def lag(self, name: str) -> int:
        """Events stored after read model ``name``'s position, 0 when none of them is of its
        topics (negative when the view is ahead of the store)."""
        view = self._current(name).view
        last = self.app.recorder.max_notification_id() or 0
        done = view.position(self.app.name)
        return 0 if done < last and self._processed(view, last) else last - done

    def status(self) -> dict[str, dict[str, Any]]:
        """Each read model's ``position``, ``lag`` (events stored but not yet processed),
        ``state`` ("ok" or "refused") and ``reason`` (None when ok)."""
        report = {}
        for name in self.classes:
            reason = self.verify(name)
            report[name] = {"position": self.position(name), "lag": self.lag(name),
                            "state": "refused" if reason else "ok", "reason": reason}
        return report

    # -- catching up ----------------------------------------------------------------------------

    def catch_up(self, names: list[str] | None = None, progress: Progress | None = None) -> int:
        """Inline mode: process every stored event the named read models (default all) have
        not; returns how many events were read. Each returns only once its view has processed
        what was stored when it was called, waiting for another thread's or process's catch-up
        of it rather than skipping it. A refused view is skipped (its reads raise
        ViewUnavailable)."""
        read = 0
        for name in names or list(self.classes):
            target = self.app.recorder.max_notification_id() or 0
            with self._locks[name]:
                if self.verify(name) is not None:
                    continue
                read += self._catch_up_view(self._current(name).view, target, progress)
        return read

    def _catch_up_view(self, view: ReadModel, target: int, progress: Progress | None) -> int:
        read, conflicts = 0, 0
        while True:
            done = view.position(self.app.name)
            if done >= target:
                return read
            notifications = self.app.recorder.select_notifications(
                start=done, limit=self.batch_size, topics=view.topics, inclusive_of_start=False)
            if not notifications:
                return read
            batch = [(self.app.mapper.to_domain_event(n), n.id) for n in notifications]
            try:
                view.process(self.app.name, batch)
            except (IntegrityError, OperationalError):
                # Another process committed this view meanwhile: read on from its position.
                conflicts += 1
                if conflicts > 100:
                    raise
                time.sleep(0.001 * conflicts)
                continue
            read += len(notifications)
            if progress:
                progress(notifications[-1].id, max(target, notifications[-1].id))
            if len(notifications) < self.batch_size:
                return read

    def rebuild(self, name: str, progress: Progress | None = None) -> int:
        """Build read model ``name`` from position 0 into a new generation beside the live one,
        then switch to it atomically once caught up (readers keep reading the old generation
        until then; a generation older than the previous live one is dropped). One rebuild of a
        read model at a time (a second waits for the first). Returns how many events were
        processed. Views without a store are rebuilt in place."""
        if self.store is None:
            with self._locks[name]:
                self._live[name].view.clear()
                self._live[name].refused = None
            return self.catch_up([name], progress)
        with self.store.runner_lock(f"rebuild-{name}", threading.Event()):
            return self._rebuild(name, progress)

    def _rebuild(self, name: str, progress: Progress | None) -> int:
        assert self.store is not None
        view_class = self.classes[name]
        live = self.store.live(view_class)
        existing = self.store.generations(view_class)
        new = max([live, *existing]) + 1
        for stale in existing:
            if stale not in (live,):
                self.store.drop(view_class, stale)
        view = self.store.open(view_class, new, create=True)
        read = 0
        while True:  # until a pass finds (nearly) nothing new: then switch
            target = self.app.recorder.max_notification_id() or 0
            count = self._catch_up_view(view, target, progress)
            read += count
            if count < self.batch_size:
                break
        self.store.switch(view_class, new)
        self._install(name, new, view)
        return read

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

    def open_episodes(self, clinic_id: str | None = None) -> Iterator[UUID]:
        """The ids of a clinic's open episodes (every clinic's without ``clinic_id``), in
        opening order (the episodes read model, caught up first)."""
        self.catch_up(["episodes"])
        after: int | None = 0
        while after is not None:
            page, after = self.episodes.find(clinic_id=clinic_id, after=after, limit=500)
            yield from (UUID(s["episode_id"]) for s in page if s["closed_on"] is None)

    def close(self) -> None:
        """Close every view's connections (and the store's when it was opened here)."""
        for live in self._live.values():
            live.view.datastore.close()
        for view in self._retired:
            view.datastore.close()
        if self.store is not None:
            self.store.close()


def _declared(view: ReadModel) -> type[ReadModel]:
    """The read model class a concrete (SQLite/PostgreSQL) view was made from."""
    for klass in type(view).__mro__[1:]:
        if issubclass(klass, ReadModel) and "apply" in vars(klass):
            return klass
    return type(view)


# -- runners ------------------------------------------------------------------------------------

def _follow_one(models: ReadModels, name: str, env: Mapping[str, str],
                application_class: type[Any], stop: threading.Event,
                interval: float = 0.2) -> None:
    """Keep read model ``name`` current until ``stop``: the library's ProjectionRunner on
    PostgreSQL, a polling catch-up on SQLite; restarted on the new generation after a rebuild's
    switch; idle while the view is refused."""
    assert models.store is not None
    postgres = models.store.kind == "postgres"
    while not stop.is_set():
        live = models._current(name)
        if models.verify(name) is not None:
            stop.wait(1.0)  # refused: wait for a rebuild's new generation
            continue
        def switched(generation: int = live.generation) -> bool:
            assert models.store is not None
            return stop.is_set() or models.store.live(models.classes[name]) != generation

        if postgres:
            # The backlog in batches (one transaction per batch_size events), then the
            # subscription for the tail (one transaction per event), and batches again
            # whenever a burst puts the view more than batch_size events behind.
            while not switched() and models.catch_up([name]) >= models.batch_size:
                pass
            with ViewRunner(application_class=application_class, view=live.view,
                            env=env) as runner:
                while not switched():
                    runner.run_forever(timeout=interval)  # re-raises the projection's error
                    if (lag := models.lag(name)) > models.batch_size:
                        # a burst: back to batches (the subscription commits once per event,
                        # measured ~430 events/s against ~2,300 batched for the episodes view)
                        log.info("runner behind, catching up in batches", view=name, lag=lag)
                        break
        else:
            while not switched():
                models.catch_up([name])
                stop.wait(interval)


def _watch(models: ReadModels, name: str, stall_s: float, stop: threading.Event) -> bool:
    """The watchdog of one runner (own connections): True, after logging an error, once read
    model ``name``'s lag has stayed above zero with its position unchanged for ``stall_s``
    seconds (a lost LISTEN connection stalls silently otherwise); False when ``stop`` is set."""
    seen, since = -1, time.monotonic()
    while not stop.wait(min(1.0, stall_s / 4)):
        try:
            if models.verify(name) is not None:  # refused (logged once): idle, not stalled
                seen, since = -1, time.monotonic()
                continue
            position, lag = models.position(name), models.lag(name)
        except Exception as exc:  # the database is away: that is not progress either
            log.warning("watchdog cannot read the view", view=name, error_type=type(exc).__name__)
            position, lag = seen, 1
        if lag <= 0 or position != seen:
            seen, since = position, time.monotonic()
        elif time.monotonic() - since >= stall_s:
            log.error("runner stalled", view=name, position=position, lag=lag)
            return True
    return False


def run(names: Sequence[str], settings: Any, stop_event: threading.Event) -> int:
    """``outcomes projections run``: keep read models ``names`` (default all five) current
    until ``stop_event`` is set; returns the exit status: 0 when stopped, 1 when a runner
    stalled (the watchdog: lag above zero and unchanged for ``settings.projection_stall_s``
    seconds, logged first) or failed. Each read model is driven by one runner at a time
    (``ViewStore.runner_lock``: a second process waits and takes over when the first dies);
    a runner resumes from the view's tracked position after any crash, and follows a rebuild
    to the new generation. Raises ValueError for an unknown name."""
    from application.access_log import AccessLog
    from application.outcomes import OutcomesApplication

    known = {**READ_MODELS, **ACCESS_MODELS}
    names = list(names) or list(known)
    if unknown := [n for n in names if n not in known]:
        raise ValueError(f"unknown read model {', '.join(unknown)}; known: {', '.join(known)}")
    view_store: ViewStore = settings.view_store()
    stall_s = float(settings.projection_stall_s)
    results: dict[str, int] = {}
    halt = threading.Event()

    def one(name: str) -> None:
        access = name in ACCESS_MODELS
        env = store_env(settings, "access-log" if access else "outcomes")
        app_class = AccessLog if access else OutcomesApplication
        try:
            def waiting() -> None:
                log.info("runner waiting: another runner holds this read model", view=name)

            with view_store.runner_lock(name, halt, waiting=waiting) as held:
                if not held:
                    return
                log.info("runner started", view=name)
                app = app_class(env)
                models = ReadModels.open(app, view_store, [name], create=False)
                watched = ReadModels.open(app, view_store, [name], create=False)
                def watch() -> None:
                    if _watch(watched, name, stall_s, halt):
                        results[name] = 1
                        halt.set()

                watchdog = threading.Thread(target=watch, daemon=True)
                watchdog.start()
                _follow_one(models, name, env, app_class, halt)
                log.info("runner stopped", view=name)
        except Exception as exc:
            log.error("runner failed", view=name, error_type=type(exc).__name__)

            results[name] = 1
        finally:
            halt.set()  # one runner ending ends the process: its supervisor restarts it

    threads = [threading.Thread(target=one, args=(n,), name=f"runner-{n}", daemon=True)
               for n in names]
    for thread in threads:
        thread.start()
    while not halt.wait(0.2):
        if stop_event.is_set():
            halt.set()
    for thread in threads:
        thread.join(timeout=10)  # a thread stuck on a dead connection is left to the exit
    return max(results.values(), default=0)


def store_env(settings: Any, store: str) -> dict[str, str]:
    """The library environment of event store ``store`` ("outcomes", "access-log",
    "rescoring-runs") from the settings (``Settings.eventsourcing_env``)."""
    return dict(settings.eventsourcing_env(store))
