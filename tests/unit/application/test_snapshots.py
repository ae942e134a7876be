"""Episode snapshots (ADR 0025): taken every 50 events, equal to a replay of the events, used
for the latest and for historical reads, skipped (the events replayed instead) when they cannot
be used: another Episode.class_version, a state that does not decode. Each test runs on the
in-memory store and on PostgreSQL (the ``app`` fixture)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from application.outcomes import SNAPSHOT_INTERVAL, OutcomesApplication, project_events
from domain.criteria.builtin import BUILTIN
from domain.episode import Episode

SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2024, 1, 1)


def long_episode(app: OutcomesApplication, assessments: int = 120) -> UUID:
    """An episode with ``assessments`` PHQ-9 totals every 3 days (with its stage events)."""
    episode_id = app.open_episode(patient_ref="pt-long", clinic_id="clinic-a", recorded_by="t",
                                  criteria="acnp2006", opened_on=START).episode_id
    for n in range(assessments):
        app.record_assessment(episode_id, instrument="PHQ-9", total=SCORES[n % len(SCORES)],
                              administered=START + timedelta(days=3 * n), recorded_by="t")
    return episode_id


def state(episode: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(episode).items() if k != "_pending_events"}


def replayed(app: OutcomesApplication, episode_id: UUID, version: int | None = None) -> Any:
    """The episode from its events alone (no snapshot)."""
    return project_events(None, app.events.get(episode_id, lte=version))


def snapshot_versions(app: OutcomesApplication, episode_id: UUID) -> list[int]:
    assert app.snapshots is not None
    return [s.originator_version for s in app.snapshots.recorder.select_events(episode_id)]


def test_a_snapshot_is_taken_at_every_multiple_of_the_interval(app: OutcomesApplication) -> None:
    episode_id = long_episode(app)
    version = app.get_episode(episode_id).version
    assert SNAPSHOT_INTERVAL == 50
    # 120 assessments, their stage events, and schueller2015-phq9's off-track alerts at week 9
    # (day 60: PHQ-9 18 >= 13) and at week 14 (day 93: 16 >= 9, a new decision point still not
    # on track) and BackOnTrack at week 14 (day 99: 8 < 9) (ADR 0031, revised after review)
    assert version == 125
    assert snapshot_versions(app, episode_id) == [50, 100]


def test_the_latest_and_historical_reads_equal_a_replay_of_the_events(
        app: OutcomesApplication) -> None:
    episode_id = long_episode(app)
    latest = app.get_episode(episode_id)
    assert state(latest) == state(replayed(app, episode_id))
    assert latest.stage == replayed(app, episode_id).stage
    for version in (1, 49, 50, 51, 99, 100, 101, 124):
        at = app.get_episode(episode_id, version=version)
        assert at.version == version
        assert state(at) == state(replayed(app, episode_id, version))


def test_a_command_after_a_snapshot_stores_what_a_replay_would_have(
        app: OutcomesApplication) -> None:
    episode_id = long_episode(app, 100)
    result = app.record_assessment(episode_id, instrument="PHQ-9", total=21,
                                   administered=START + timedelta(days=400), recorded_by="t")
    events = app.episode_events(episode_id)
    assert events[-1].originator_version == result.version
    assert type(events[-len(result.stage_events) - 1]).__name__ == "AssessmentRecorded"
    assert state(app.get_episode(episode_id)) == state(replayed(app, episode_id))


def test_a_snapshot_of_another_class_version_is_ignored(app: OutcomesApplication,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    episode_id = long_episode(app, 60)
    assert app.snapshots is not None
    assert [type(s).__name__ for s in app.snapshots.get(episode_id)] == ["RestoredSnapshot"]
    # the shape changed since it was taken
    monkeypatch.setattr(Episode, "class_version", Episode.class_version + 1)
    assert list(app.snapshots.get(episode_id)) == []
    assert state(app.get_episode(episode_id)) == state(replayed(app, episode_id))


def test_a_snapshot_that_does_not_decode_is_skipped(app: OutcomesApplication) -> None:
    episode_id = long_episode(app, 60)
    version = app.get_episode(episode_id).version
    assert app.snapshots is not None
    app.snapshots.recorder.insert_events([StoredEvent(
        originator_id=episode_id, originator_version=version, topic=Episode.Snapshot.TOPIC,
        state=b'{"not": "an episode"')])
    assert snapshot_versions(app, episode_id) == [50, version]
    assert state(app.get_episode(episode_id)) == state(replayed(app, episode_id))
    assert state(app.get_episode(episode_id, version=version)) == state(
        replayed(app, episode_id, version))


def test_the_criteria_ref_a_command_cites_is_the_recorded_one(app: OutcomesApplication) -> None:
    """The ref read from the recorded definition equals the one computed from the set (every
    built-in set and a variant), so decisions cite the same id, version and hash as before."""
    for n, criteria in enumerate([*BUILTIN, "frank1991|rounding=half_up"]):
        episode_id = app.open_episode(patient_ref=f"pt-{n}", clinic_id="clinic-a",
                                      recorded_by="t", criteria=criteria,
                                      opened_on=START).episode_id
        episode = app.get_episode(episode_id)
        assert episode.criteria_ref == episode.criteria_set.ref()
        assert episode.criteria_ref == app.criteria_set(criteria).ref()


@pytest.mark.file_store
def test_an_episode_another_process_moved_past_a_snapshot_still_reads_as_its_events(
        app: OutcomesApplication) -> None:
    """This process saw the episode short (no snapshot asked for); another one took it past
    its first snapshot: the next read replays the events and is right, then uses the snapshot."""
    episode_id = long_episode(app, 5)
    assert app.snapshots is not None
    assert list(app.snapshots.get(episode_id)) == []  # a hint: not even asked
    other = OutcomesApplication(dict(app.env), clock=app.clock)
    try:
        for n in range(5, 60):
            other.record_assessment(episode_id, instrument="PHQ-9", total=SCORES[n % 10],
                                    administered=START + timedelta(days=3 * n), recorded_by="t")
        assert snapshot_versions(other, episode_id) == [50]
    finally:
        other.close()
    assert state(app.get_episode(episode_id)) == state(replayed(app, episode_id))
    assert [s.originator_version for s in app.snapshots.get(episode_id)] == [50]
    result = app.record_assessment(episode_id, instrument="PHQ-9", total=9,
                                   administered=START + timedelta(days=200), recorded_by="t")
    assert result.version == app.get_episode(episode_id).version
    assert state(app.get_episode(episode_id)) == state(replayed(app, episode_id))


def test_one_save_of_many_events_snapshots_every_multiple_it_reaches(
        app: OutcomesApplication) -> None:
    """A batch (an import saving an episode's events at once) gets the same snapshots as the
    commands one by one, each equal to a replay up to its version."""
    episode = Episode.open(episode_id=uuid4(), patient_ref="pt-batch", clinic_id="clinic-a",
                           criteria=app.criteria_set("acnp2006"), instrument="PHQ-9",
                           opened_on=START, recorded_by="t", now=app.clock())
    n = 0
    while episode.version < 120:
        episode.record_assessment(assessment_id=f"a{n}", instrument="PHQ-9",
                                  total=SCORES[n % 10], administered=START + timedelta(days=3 * n),
                                  items=None, recorded_by="t", now=app.clock())
        n += 1
    app.save(episode)
    assert snapshot_versions(app, episode.id) == [50, 100]
    for version in (50, 100):
        assert state(app.get_episode(episode.id, version=version)) == state(
            replayed(app, episode.id, version))
