"""The overdue sweep: ``Episode.flag_overdue`` on every open episode (one use case over many
episodes, one save each; ADR 0031). Run by ``outcomes alerts sweep`` and, every
``OUTCOMES_OVERDUE_SWEEP_INTERVAL`` seconds, by ``outcomes serve``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from application.outcomes import OutcomesApplication
from domain.alerts import overdue_days_checked
from domain.errors import EpisodeNotFoundError

# The ids of the open episodes of every clinic (the episodes read model, caught up first).
OpenEpisodes = Callable[[], Iterable[UUID]]
SWEEPER = "system:overdue-sweep"  # recorded_by of the sweeps ``outcomes serve`` runs
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OverdueSweep:
    """What a sweep did: the day it swept (``today``), the default ``overdue_days`` it applied
    (an episode watched by a chosen overdue pack uses that pack's), how many
    open ``episodes`` it checked and the ones it ``flagged`` (a new overdue alert each)."""

    today: date
    overdue_days: int
    episodes: int
    flagged: tuple[UUID, ...]


def sweep_overdue(app: OutcomesApplication, open_episodes: OpenEpisodes, *, overdue_days: int,
                  recorded_by: str, today: date | None = None) -> OverdueSweep:
    """Flag every open episode without a scorable assessment of its staged instrument for
    ``overdue_days`` days (the default: its chosen overdue pack's days win) up to ``today``
    (default: the application clock's date) and no unresolved overdue alert. An episode erased
    meanwhile is passed over. Raises InvalidInputError (``overdue_days`` < 1) before any
    episode is touched."""
    day = today or app.clock().date()
    overdue_days_checked(overdue_days)
    checked, flagged = 0, []
    for episode_id in open_episodes():
        checked += 1
        try:
            result = app.flag_overdue(episode_id, today=day, overdue_days=overdue_days,
                                      recorded_by=recorded_by)
        except EpisodeNotFoundError:
            continue
        if not result.replayed:
            flagged.append(episode_id)
    return OverdueSweep(day, overdue_days, checked, tuple(flagged))


def follow(app: OutcomesApplication, open_episodes: OpenEpisodes, *, interval: float,
           overdue_days: int, recorded_by: str) -> Callable[[], None]:
    """Sweep every ``interval`` seconds in a daemon thread (the first after one interval);
    returns the function that stops it (waits at most 10 s). Interval 0: nothing runs. A
    failed sweep is logged (its error type only) and the next interval tries again; two
    processes sweeping at once raise one alert (flag_overdue is retried on fresh state)."""
    stopped = threading.Event()
    if interval <= 0:
        return stopped.set

    def loop() -> None:
        while not stopped.wait(interval):
            try:
                done = sweep_overdue(app, open_episodes, overdue_days=overdue_days,
                                     recorded_by=recorded_by)
                logger.info("overdue sweep: %d episodes, %d flagged", done.episodes,
                            len(done.flagged))
            except Exception as exc:  # keep going; the next interval retries
                logger.error("overdue sweep failed: %s", type(exc).__name__)

    thread = threading.Thread(target=loop, name="overdue-sweep", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=10)
    return stop
