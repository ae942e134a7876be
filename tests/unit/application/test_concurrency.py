"""Concurrent writers on one episode: no event is lost, versions have no gaps, and a caller that
states an expected version learns that it lost instead of overwriting.

Threads of one application share it; "processes" are separate application instances on one SQLite
file. A save that loses the race (IntegrityError: the version is taken) is retried on fresh state;
the lost race is forced deterministically by writing between the command's load and its save.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from application.outcomes import CommandResult, OutcomesApplication
from domain.criteria.fold import fold
from domain.episode import Episode
from domain.errors import VersionConflictError

NOW = datetime(2027, 12, 31, tzinfo=UTC)
CLINICIAN = "clinician-0042"
START = date(2026, 1, 5)
THREADS, PER_THREAD = 8, 10


def open_episode(app: OutcomesApplication, criteria: str = "frank1991") -> UUID:
    return app.open_episode(patient_ref="pseudo-77", clinic_id="clinic-1", recorded_by=CLINICIAN,
                            criteria=criteria, opened_on=START).episode_id


def record(app: OutcomesApplication, episode_id: UUID, offset: int, total: int,
           **kwargs: Any) -> CommandResult:
    return app.record_assessment(episode_id, instrument="PHQ-9",
                                 administered=START + timedelta(days=offset), total=total,
                                 recorded_by=CLINICIAN, assessment_id=f"a-{offset:03d}", **kwargs)


def assert_consistent(app: OutcomesApplication, episode_id: UUID) -> list[Episode.Event]:
    """Versions 1..N without gaps, and the asserted decisions are what a fresh fold concludes."""
    events = app.episode_events(episode_id)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    episode = app.get_episode(episode_id)
    fresh = fold([a.observation() for a in episode.valid_assessments()], episode.criteria_set)
    assert sorted(d.key for d in fresh.events) == sorted(s.key for s in episode.stages.values())
    return events


def recorded_ids(events: list[Episode.Event]) -> list[str]:
    return [e.assessment_id for e in events if isinstance(e, Episode.AssessmentRecorded)]


def run_together(*tasks: Callable[[], Any]) -> list[Any]:
    """Start the tasks at the same moment on their own threads; each result or exception."""
    barrier = threading.Barrier(len(tasks))
    outcomes: list[Any] = [None] * len(tasks)

    def run(index: int, task: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[index] = task()
        except Exception as exc:  # collected: the test asserts on it
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def interfere_once(monkeypatch: pytest.MonkeyPatch, app: OutcomesApplication,
                   other_writer: Callable[[], Any], times: int = 1) -> list[int]:
    """Make ``app``'s next ``times`` loads stale: another writer commits right after each load."""
    original = app.get_episode
    loads: list[int] = []

    def get_episode(episode_id: UUID, version: int | None = None) -> Episode:
        episode = original(episode_id, version)
        loads.append(episode.version)
        if len(loads) <= times:
            other_writer()
        return episode

    monkeypatch.setattr(app, "get_episode", get_episode)
    return loads


def write_directly(app: OutcomesApplication, episode_id: UUID, assessment_id: str, offset: int,
                   total: int) -> None:
    """Another writer's command, below the application service (and its per-episode lock)."""
    episode: Episode = app.repository.get(episode_id)
    episode.record_assessment(assessment_id=assessment_id, instrument="PHQ-9",
                              administered=START + timedelta(days=offset), items=None, total=total,
                              recorded_by="clinician-0007", now=NOW)
    app.save(episode)


def test_threads_sharing_one_application_lose_no_assessment(
        sqlite_app_factory: Callable[[], OutcomesApplication]) -> None:
    # Given one episode on SQLite and one application shared by 8 threads
    app = sqlite_app_factory()
    episode_id = open_episode(app)
    # scores fall over the dates, so decisions are made, and withdrawn as earlier dates arrive
    offsets = {t: [t + THREADS * i for i in range(PER_THREAD)] for t in range(THREADS)}

    def writer(thread: int) -> list[CommandResult]:
        return [record(app, episode_id, offset, max(0, 20 - offset // 4))
                for offset in offsets[thread]]

    # When each records 10 assessments at the same time
    outcomes = run_together(*(lambda t=t: writer(t) for t in range(THREADS)))
    # Then no exception escaped, every assessment is stored once, and the record is consistent
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    events = assert_consistent(app, episode_id)
    ids = recorded_ids(events)
    assert len(ids) == THREADS * PER_THREAD == len(set(ids))
    assert set(ids) == {f"a-{o:03d}" for offs in offsets.values() for o in offs}
    assert app.stage_history(episode_id)  # the fall from 20 to 0 was staged


def test_two_processes_racing_with_expected_version_exactly_one_wins(
        sqlite_app_factory: Callable[[], OutcomesApplication]) -> None:
    first, second = sqlite_app_factory(), sqlite_app_factory()
    episode_id = open_episode(first)
    record(first, episode_id, 0, 18)
    for round_ in range(1, 6):
        # Given both processes saw the same version
        version = second.get_episode(episode_id).version
        # When both record with that expected version at the same moment
        outcomes = run_together(
            *(partial(record, app, episode_id, 2 * round_ + n, 12, expected_version=version)
              for n, app in enumerate((first, second))))
        # Then exactly one wins and the other is told of the conflict
        winners = [o for o in outcomes if isinstance(o, CommandResult)]
        losers = [o for o in outcomes if isinstance(o, VersionConflictError)]
        assert (len(winners), len(losers)) == (1, 1), outcomes
        assert winners[0].version == version + 1 == first.get_episode(episode_id).version
    events = assert_consistent(first, episode_id)
    assert len(recorded_ids(events)) == 1 + 5


def test_lost_save_is_retried_on_fresh_state_across_processes(
        sqlite_app_factory: Callable[[], OutcomesApplication],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two processes on one file, and the first commits while the second's command runs
    first, second = sqlite_app_factory(), sqlite_app_factory()
    episode_id = open_episode(first)
    record(first, episode_id, 0, 18)
    loads = interfere_once(monkeypatch, second, lambda: record(first, episode_id, 21, 8))
    # When the second records without an expected version
    result = record(second, episode_id, 14, 9)
    # Then its first save lost, it reloaded and retried, and both assessments are stored
    assert loads[:2] == [2, 4]  # after the other writer: AssessmentRecorded + ResponseReached
    assert recorded_ids(assert_consistent(second, episode_id)) == ["a-000", "a-021", "a-014"]
    # the retry re-staged on fresh state: 14 (9) now confirms the response, not 21 (8)
    assert [(e.type, e.assessment_id) for e in result.stage_events] == \
        [("ResponseReached", "a-014")]
    assert [r.retracted_type for r in result.retracted] == ["ResponseReached"]


def test_lost_save_with_expected_version_is_a_conflict_not_a_retry(
        sqlite_app_factory: Callable[[], OutcomesApplication],
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = sqlite_app_factory(), sqlite_app_factory()
    episode_id = open_episode(first)
    version = record(first, episode_id, 0, 18).version
    interfere_once(monkeypatch, second, lambda: record(first, episode_id, 21, 8))
    with pytest.raises(VersionConflictError, match="changed while this command ran"):
        record(second, episode_id, 14, 9, expected_version=version)
    assert recorded_ids(assert_consistent(first, episode_id)) == ["a-000", "a-021"]


def test_in_memory_lost_save_is_retried(app: OutcomesApplication,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given another writer that appends to the episode right after the command loads it
    episode_id = open_episode(app, "acnp2006")
    record(app, episode_id, 0, 18)
    loads = interfere_once(monkeypatch, app,
                           lambda: write_directly(app, episode_id, "a-other", 7, 16))
    # When the command saves
    result = record(app, episode_id, 14, 13)
    # Then it lost once, was retried on the fresh episode, and nothing was lost
    assert loads == [2, 3]
    assert result.version == 4
    assert recorded_ids(assert_consistent(app, episode_id)) == ["a-000", "a-other", "a-014"]


def test_in_memory_writer_that_always_loses_gives_up_with_a_conflict(
        app: OutcomesApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given another writer that gets in first every time
    episode_id = open_episode(app, "acnp2006")
    others = iter(range(100, 200))
    loads = interfere_once(
        monkeypatch, app,
        lambda: write_directly(app, episode_id, f"a-{next(others)}", 30, 15),
        times=OutcomesApplication.max_attempts)
    # When the command runs, Then it gives up after the bounded retries, having appended nothing
    with pytest.raises(VersionConflictError, match="gave up after 5 attempts"):
        record(app, episode_id, 1, 16)
    assert len(loads) == OutcomesApplication.max_attempts
    assert recorded_ids(assert_consistent(app, episode_id)) == \
        [f"a-{n}" for n in range(100, 100 + OutcomesApplication.max_attempts)]
