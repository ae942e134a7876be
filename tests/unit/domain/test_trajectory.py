"""Reading a trajectory document (the row format of vectors.json) and rendering a fold (G3)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from domain.criteria.builtin import BUILTIN
from domain.errors import NaiveDatetimeError
from domain.trajectory import (
    TrajectoryError,
    evaluate,
    parse_clinical_date,
    parse_trajectory,
    render,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-01-05", date(2026, 1, 5)),
    # G3: a datetime counts on its own local calendar date, not on the UTC date
    ("2026-01-05T23:30:00-05:00", date(2026, 1, 5)),   # 2026-01-06 04:30 UTC
    ("2026-01-06T00:30:00+02:00", date(2026, 1, 6)),   # 2026-01-05 22:30 UTC
    ("2026-01-05T09:00:00Z", date(2026, 1, 5)),
])
def test_a_clinical_date_is_the_local_calendar_date(value, expected):
    assert parse_clinical_date(value) == expected


def test_a_datetime_without_offset_is_rejected():
    with pytest.raises(NaiveDatetimeError) as caught:
        parse_clinical_date("2026-01-05T09:00:00")
    assert caught.value.field == "date"


def test_rows_become_observations_numbered_from_one():
    trajectory = parse_trajectory({"instrument": "PHQ-9", "discharge": "2026-02-02", "assessments": [
        {"date": "2026-01-05", "total": 15},
        {"date": "2026-01-19", "items": [1, 1, 1, 1, 0, 0, 0, 0, None],
         "recorded_at": "2026-01-19T10:00:00+01:00"},
        {"date": "2026-01-19", "total": 9, "instrument": "GAD-7"},
    ]})
    first, second, third = trajectory.observations
    assert (trajectory.instrument, trajectory.discharge) == ("PHQ-9", date(2026, 2, 2))
    assert [o.assessment_id for o in trajectory.observations] == ["row-0001", "row-0002", "row-0003"]
    assert (first.instrument, first.on, first.total, first.items) == (
        "PHQ-9", date(2026, 1, 5), 15, None)
    assert second.items == (1, 1, 1, 1, 0, 0, 0, 0, None)
    assert second.recorded_at is not None
    assert second.recorded_at.utcoffset() == timedelta(hours=1)
    assert second.recorded_at == datetime.fromisoformat("2026-01-19T09:00:00+00:00")
    assert third.instrument == "GAD-7"


@pytest.mark.parametrize(("doc", "row", "field"), [
    ({"assessments": "none"}, None, "assessments"),
    ({"instrument": 9, "assessments": []}, None, "instrument"),
    ({"assessments": [{"date": "2026-01-05", "total": 15}, "x"]}, 2, None),
    ({"assessments": [{"date": "2026-01-05", "items": "1,1,1"}]}, 1, "items"),
    ({"assessments": [{"date": "2026-13-05", "total": 15}]}, 1, "date"),
    ({"assessments": [{"total": 15}]}, 1, "date"),
    ({"assessments": [{"date": "2026-01-05", "total": 15, "recorded_at": "today"}]}, 1,
     "recorded_at"),
    ({"discharge": "2026-02-30", "assessments": []}, None, "discharge"),
])
def test_a_malformed_document_names_the_row_and_field(doc, row, field):
    with pytest.raises(TrajectoryError) as caught:
        parse_trajectory(doc)
    assert (caught.value.row, caught.value.field) == (row, field)


def test_a_row_that_cannot_be_scored_is_reported_at_evaluation_with_its_row():
    trajectory = parse_trajectory({"assessments": [
        {"date": "2026-01-05", "total": 15},
        {"date": "2026-01-19", "items": [1, 1, 1, 4, 0, 0, 0, 0, 0]},
    ]})
    with pytest.raises(TrajectoryError) as caught:
        evaluate(trajectory, BUILTIN["frank1991"])
    assert (caught.value.row, caught.value.field) == (2, "items[3]")
    assert str(caught.value).startswith("row 2, field items[3]: ")


def test_render_gives_events_for_stages_and_the_outcome_for_course_measures():
    trajectory = parse_trajectory({"assessments": [
        {"date": "2026-01-05", "total": 16}, {"date": "2026-01-19", "total": 8},
        {"date": "2026-02-02", "total": 4},
    ]})
    events = render(evaluate(trajectory, BUILTIN["frank1991"]))
    assert [(e["type"], e["date"]) for e in events] == [
        ("ResponseReached", "2026-01-19"), ("RemissionReached", "2026-02-02")]
    assert events[0]["evidence"]["assessments"][1] == {
        "assessment_id": "row-0002", "date": "2026-01-19", "instrument": "PHQ-9", "score": 8}
    outcome = render(evaluate(trajectory, BUILTIN["nhs-talking-therapies-2024"]))
    assert isinstance(outcome, dict)
    assert outcome["reliable_improvement"] is True  # 16 -> 4: a drop of 12 >= 6
