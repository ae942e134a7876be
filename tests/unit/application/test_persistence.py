"""An episode written to SQLite reads back identically in a fresh application (another process):
the same events with the same field types (dates stay ``datetime.date`` through DateAsISO, moments
keep their UTC offset), the same state, the same stage history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from application.outcomes import OutcomesApplication
from domain.episode import Episode

CLINICIAN = "clinician-0042"
# SPEC §5 V11 (weekly PHQ-9 totals), then the back-dated 02-05 score of 6.
V11 = [("01-05", 15), ("01-12", 11), ("01-19", 7), ("01-26", 4), ("02-02", 3), ("02-09", 4),
       ("02-16", 2), ("02-23", 3), ("03-02", 2), ("03-09", 3)]


def day(month_day: str) -> date:
    return date.fromisoformat(f"2026-{month_day}")


def types_of(event: Episode.Event) -> dict[str, type]:
    return {name: type(value) for name, value in event.__dict__.items()}


@pytest.fixture
def written(sqlite_app_factory: Callable[[], OutcomesApplication],
            monkeypatch: pytest.MonkeyPatch) -> tuple[OutcomesApplication, UUID, list[Any]]:
    """An episode with every kind of event, written through SQLite; the events as created."""
    app = sqlite_app_factory()
    created: list[Any] = []
    save = app.save

    def keep(*args: Any, **kwargs: Any) -> Any:
        recordings = save(*args, **kwargs)
        created.extend(r.domain_event for r in recordings)
        return recordings

    monkeypatch.setattr(app, "save", keep)
    episode_id = app.open_episode(patient_ref="pseudo-11", clinic_id="clinic-1",
                                  recorded_by=CLINICIAN, criteria="frank1991",
                                  opened_on=day("01-05")).episode_id
    for month_day, total in V11:
        app.record_assessment(episode_id, instrument="PHQ-9", administered=day(month_day),
                              total=total, recorded_by=CLINICIAN, assessment_id=f"a-{month_day}")
    app.record_assessment(episode_id, instrument="PHQ-9",
                          administered=datetime(2026, 2, 5, 0, 15,
                                                tzinfo=timezone(timedelta(hours=1))),
                          items=[1, 1, 1, 1, 0, 1, 0, 0, 1], recorded_by="clinician-0007",
                          assessment_id="a-02-05-paper",
                          source={"system": "paper", "key_hash": "0" * 64, "recorded_at": None,
                                  "flags": ["ANSWER_CODE_MISMATCH"]})
    app.void_assessment(episode_id, "a-03-09", reason="wrong patient", recorded_by=CLINICIAN)
    app.close_episode(episode_id, discharged_on=day("03-09"), recorded_by=CLINICIAN)
    return app, episode_id, created


def test_fresh_application_reads_the_same_events_with_the_same_types(
        written: tuple[OutcomesApplication, UUID, list[Any]],
        sqlite_app_factory: Callable[[], OutcomesApplication]) -> None:
    _, episode_id, created = written
    # When a fresh application opens the same file
    events = sqlite_app_factory().episode_events(episode_id)
    # Then it reads exactly the events that were created, field by field and type by type
    assert {type(e).__name__ for e in events} >= {
        "Opened", "AssessmentRecorded", "ResponseReached", "RemissionReached", "StageRetracted",
        "SafetyItemPositive", "AssessmentVoided", "Closed"}
    assert events == created
    assert [types_of(e) for e in events] == [types_of(e) for e in created]
    for event in events:
        assert type(event.clinical_date) is date
    stage_events = [e for e in events if isinstance(e, Episode.StageEvent)]
    assert all(type(e.onset) is date for e in stage_events if e.onset is not None)
    assert any(e.onset is not None for e in stage_events)
    (paper,) = [e for e in events
                if isinstance(e, Episode.AssessmentRecorded) and e.assessment_id == "a-02-05-paper"]
    assert paper.clinical_date == day("02-05")
    assert paper.administered_at == datetime(2026, 2, 5, 0, 15,
                                             tzinfo=timezone(timedelta(hours=1)))
    assert paper.administered_at.utcoffset() == timedelta(hours=1)


def test_fresh_application_rebuilds_the_same_episode_and_history(
        written: tuple[OutcomesApplication, UUID, list[Any]],
        sqlite_app_factory: Callable[[], OutcomesApplication]) -> None:
    app, episode_id, _ = written
    fresh = sqlite_app_factory()
    before, after = app.get_episode(episode_id), fresh.get_episode(episode_id)
    assert after.version == before.version
    assert after.assessments == before.assessments
    assert after.stages == before.stages
    assert (after.stage, after.closed_on, after.criteria) == \
        (before.stage, before.closed_on, before.criteria)
    assert type(after.closed_on) is date
    for include_retracted in (False, True):
        assert fresh.stage_history(episode_id, include_retracted=include_retracted) == \
            app.stage_history(episode_id, include_retracted=include_retracted)
    assert [e["retracted"] is not None
            for e in fresh.stage_history(episode_id, include_retracted=True)].count(True) >= 1


def test_course_outcome_survives_the_round_trip(
        sqlite_app_factory: Callable[[], OutcomesApplication]) -> None:
    # Given an NHS Talking Therapies course with paired PHQ-9 and GAD-7 (SPEC §5 V16), discharged
    app = sqlite_app_factory()
    episode_id = app.open_episode(patient_ref="pseudo-16", clinic_id="clinic-1",
                                  recorded_by=CLINICIAN, criteria="nhs-talking-therapies-2024",
                                  opened_on=day("01-05")).episode_id
    for month_day, phq, gad in (("01-05", 11, 9), ("01-19", 9, 8), ("02-02", 7, 6)):
        for instrument, total in (("PHQ-9", phq), ("GAD-7", gad)):
            app.record_assessment(episode_id, instrument=instrument, administered=day(month_day),
                                  total=total, recorded_by=CLINICIAN)
    closed = app.close_episode(episode_id, discharged_on=day("02-02"), recorded_by=CLINICIAN)
    assert closed.outcome is not None
    assert (closed.outcome.recovery, closed.outcome.reliable_improvement) == (True, False)
    # When a fresh application reads it, Then the outcome is the same
    fresh = sqlite_app_factory().get_episode(episode_id)
    assert fresh.outcome == closed.outcome.as_json()
    assert fresh.closed_on == day("02-02")
