"""G2 (SPEC §2.1, revised): two records of one instrument on one date with different
administration times are two administrations, and the later-administered one is the day's score;
only equal or absent times make the later-recorded record an amendment.

The scenario from the outside case: baseline PHQ-9 16 on 2026-01-05; on 2026-01-19 a 17:00
administration scores 7 (response: 2 x (16 - 7) = 18 >= 16); two days later a 09:00 paper form
of the same date, scoring 12 (no response: 2 x 4 = 8 < 16), is entered. The 17:00 score is the
day's score, so the response stands and nothing is retracted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import fold
from domain.criteria.timeline import Observation, day_scores, days_record
from domain.episode import Episode
from domain.trajectory import evaluate, parse_trajectory

NOW = datetime(2027, 12, 31, tzinfo=UTC)
CLINICIAN = "clinician-0042"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


BASELINE = Observation("baseline", "PHQ-9", date(2026, 1, 5), total=16,
                       recorded_at=at("2026-01-05T10:00:00+00:00"),
                       administered_at=at("2026-01-05T09:30:00+00:00"))
EVENING = Observation("evening", "PHQ-9", date(2026, 1, 19), total=7,
                      recorded_at=at("2026-01-19T17:30:00+00:00"),
                      administered_at=at("2026-01-19T17:00:00+00:00"))
PAPER_MORNING = Observation("paper-morning", "PHQ-9", date(2026, 1, 19), total=12,
                            recorded_at=at("2026-01-21T10:00:00+00:00"),
                            administered_at=at("2026-01-19T09:00:00+00:00"))


def response_ids(rows: list[Observation]) -> list[tuple[str, str]]:
    return [(e.type, e.assessment_id) for e in fold(rows, BUILTIN["frank1991"]).events]


@pytest.mark.parametrize("rows", [
    [BASELINE, EVENING, PAPER_MORNING],
    [PAPER_MORNING, EVENING, BASELINE],
])
def test_a_later_entered_earlier_administration_does_not_replace_the_days_score(rows):
    assert response_ids(rows) == [("ResponseReached", "evening")]


def test_the_later_administration_is_the_days_score_whatever_the_recording_order():
    points = day_scores([BASELINE, PAPER_MORNING, EVENING], BUILTIN["frank1991"])
    assert [(p.id, p.value) for p in points] == [("baseline", 16), ("evening", 7)]


def test_both_administrations_are_still_scored():
    result = fold([BASELINE, EVENING, PAPER_MORNING], BUILTIN["frank1991"])
    assert (result.scores["evening"].value, result.scores["paper-morning"].value) == (7, 12)


def test_equal_administration_times_make_the_later_recorded_record_an_amendment():
    corrected = Observation("corrected", "PHQ-9", date(2026, 1, 19), total=12,
                            recorded_at=at("2026-01-21T10:00:00+00:00"),
                            administered_at=at("2026-01-19T17:00:00+00:00"))
    assert response_ids([BASELINE, EVENING, corrected]) == []


def test_administration_times_are_compared_as_instants():
    # 18:30 at UTC+02:00 is 16:30 UTC: earlier than the 17:00 UTC administration.
    far_east = Observation("far-east", "PHQ-9", date(2026, 1, 19), total=12,
                           recorded_at=at("2026-01-21T10:00:00+00:00"),
                           administered_at=at("2026-01-19T18:30:00+02:00"))
    assert response_ids([BASELINE, EVENING, far_east]) == [("ResponseReached", "evening")]


def test_a_date_only_record_entered_later_amends_the_day():
    # An absent time is no evidence of a second administration (G2): the later record wins.
    date_only = Observation("date-only", "PHQ-9", date(2026, 1, 19), total=12,
                            recorded_at=at("2026-01-21T10:00:00+00:00"))
    assert response_ids([BASELINE, EVENING, date_only]) == []


def test_a_date_only_record_entered_earlier_is_amended_by_a_timed_one():
    date_only = Observation("date-only", "PHQ-9", date(2026, 1, 19), total=12,
                            recorded_at=at("2026-01-19T08:00:00+00:00"))
    assert response_ids([BASELINE, date_only, EVENING]) == [("ResponseReached", "evening")]


def test_the_response_confirmed_at_17_00_stands_when_a_09_00_paper_form_is_entered_later():
    episode = Episode.open(episode_id=uuid4(), patient_ref="pseudo-1", clinic_id="clinic-a",
                           criteria=get_criteria("frank1991"), instrument="PHQ-9",
                           opened_on=date(2026, 1, 5), recorded_by=CLINICIAN, now=NOW)
    for assessment_id, moment, total in (
            ("baseline", "2026-01-05T09:30:00+00:00", 16),
            ("evening", "2026-01-19T17:00:00+00:00", 7)):
        episode.record_assessment(assessment_id=assessment_id, instrument="PHQ-9",
                                  administered=at(moment), items=None, total=total,
                                  recorded_by=CLINICIAN, now=NOW)
    assert [(s.type, s.assessment_id) for s in episode.stages.values()] == [
        ("ResponseReached", "evening")]
    episode.collect_events()  # what was recorded so far

    episode.record_assessment(assessment_id="paper-morning", instrument="PHQ-9",
                              administered=at("2026-01-19T09:00:00+00:00"), items=None,
                              total=12, recorded_by=CLINICIAN, now=NOW)

    appended = [type(e).__name__ for e in episode.collect_events()]
    assert appended == ["AssessmentRecorded"]  # no StageRetracted, no new decision
    assert [(s.type, s.assessment_id) for s in episode.stages.values()] == [
        ("ResponseReached", "evening")]


# --- through the trajectory format of `outcomes evaluate` -------------------------------------

def test_a_trajectory_row_keeps_its_administration_time():
    doc = {"instrument": "PHQ-9", "assessments": [
        {"date": "2026-01-05T09:30:00+00:00", "total": 16},
        {"date": "2026-01-19T17:00:00+00:00", "total": 7,
         "recorded_at": "2026-01-19T17:30:00+00:00"},
        {"date": "2026-01-19T09:00:00+00:00", "total": 12,
         "recorded_at": "2026-01-21T10:00:00+00:00"},
    ]}
    trajectory = parse_trajectory(doc)
    assert trajectory.observations[2].administered_at == at("2026-01-19T09:00:00+00:00")
    assert trajectory.observations[2].on == date(2026, 1, 19)
    events = evaluate(trajectory, BUILTIN["frank1991"]).events
    assert [(e.type, e.assessment_id) for e in events] == [("ResponseReached", "row-0002")]


# --- properties over generated same-day records --------------------------------------------------

day_records = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(0, 23)), st.integers(0, 72), st.integers(0, 27)),
    min_size=1, max_size=6)


def same_day(rows: list[tuple[int | None, int, int]]) -> list[Observation]:
    """Records of one PHQ-9 on 2026-01-19: (administration hour or None, hours after the day
    began when it was recorded, total)."""
    start = datetime(2026, 1, 19, tzinfo=UTC)
    return [Observation(f"r{index}", "PHQ-9", date(2026, 1, 19), total=total,
                        recorded_at=start + timedelta(hours=recorded),
                        administered_at=None if hour is None else start + timedelta(hours=hour))
            for index, (hour, recorded, total) in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(day_records, st.randoms(use_true_random=False))
def test_the_days_score_does_not_depend_on_arrival_order(rows, rnd):
    records = same_day(rows)
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert days_record(shuffled) == days_record(records)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 23), st.integers(0, 72), st.integers(0, 27)),
                min_size=1, max_size=6, unique_by=lambda row: row[0]))
def test_with_distinct_times_the_latest_administration_wins_whenever_it_was_recorded(rows):
    records = same_day(rows)
    latest_hour = max(hour for hour, _, _ in rows)
    assert days_record(records).assessment_id == f"r{[r[0] for r in rows].index(latest_hour)}"
