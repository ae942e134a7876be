"""Commands return typed, immutable results (application.views); their JSON forms are what the
read models store and the API returns; the assessments query lists a chart in clinical order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from application.outcomes import OutcomesApplication
from application.views import (
    AssessmentView,
    Cms159Outcome,
    CriteriaRef,
    Retraction,
    StageDecisionView,
    TalkingTherapiesOutcome,
)
from domain.criteria.builtin import get_criteria
from domain.errors import EpisodeNotFoundError
from domain.stages import STAGES

NURSE = "nurse-3"


def test_open_returns_the_criteria_ref_and_the_stage(app: OutcomesApplication) -> None:
    opened = app.open_episode(patient_ref="pseudo-1", clinic_id="c-1", recorded_by=NURSE,
                              criteria="frank1991", opened_on=date(2026, 1, 5))
    ref = get_criteria("frank1991").ref()
    assert opened.criteria == CriteriaRef(ref["id"], ref["version"], ref["hash"])
    assert opened.stage == "episode" and opened.stage in STAGES
    assert (opened.stage_events, opened.retracted, opened.assessment, opened.outcome) == \
        ((), (), None, None)


def test_recording_returns_typed_assessment_and_decisions(app: OutcomesApplication) -> None:
    episode_id = app.open_episode(patient_ref="pseudo-1", clinic_id="c-1", recorded_by=NURSE,
                                  criteria="frank1991", opened_on=date(2026, 1, 5)).episode_id
    app.record_assessment(episode_id, instrument="PHQ-9", administered=date(2026, 1, 5),
                          total=18, recorded_by=NURSE, assessment_id="a-1")
    result = app.record_assessment(episode_id, instrument="PHQ-9",
                                   administered=date(2026, 1, 26), total=8, recorded_by=NURSE,
                                   assessment_id="a-2")
    assert isinstance(result.assessment, AssessmentView)
    assert (result.assessment.total, result.assessment.total_exact,
            result.assessment.severity) == (8, "8", "mild")
    (decision,) = result.stage_events
    assert isinstance(decision, StageDecisionView)
    assert (decision.type, decision.date, decision.assessment_id, decision.caused_by) == \
        ("ResponseReached", date(2026, 1, 26), "a-2", "assessment:a-2")
    assert decision.criteria.hash == get_criteria("frank1991").hash
    assert result.stage == "response"
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.type = "RemissionReached"  # type: ignore[misc]
    # The JSON form keeps the service's shape: ISO dates, the offset form of timestamps
    data = decision.as_json()
    assert (data["date"], data["onset"], data["criteria"]) == (
        "2026-01-26", None, get_criteria("frank1991").ref())
    assert data["recorded_at"].endswith("+00:00")
    voided = app.void_assessment(episode_id, "a-2", reason="typo", recorded_by=NURSE)
    (retraction,) = voided.retracted
    assert isinstance(retraction, Retraction)
    assert (retraction.stage_id, retraction.retracted_type, retraction.as_json()["type"]) == \
        (decision.stage_id, "ResponseReached", "StageRetracted")


@pytest.mark.parametrize(("criteria", "kind"), [
    ("nhs-talking-therapies-2024", TalkingTherapiesOutcome), ("cms159", Cms159Outcome)])
def test_closing_returns_the_typed_course_outcome_of_the_recorded_one(
        app: OutcomesApplication, criteria: str, kind: type) -> None:
    episode_id = app.open_episode(patient_ref="pseudo-1", clinic_id="c-1", recorded_by=NURSE,
                                  criteria=criteria, opened_on=date(2026, 1, 5)).episode_id
    for day, phq, gad in ((5, 15, 12), (19, 9, 8), (30, 6, 5)):
        app.record_assessment(episode_id, instrument="PHQ-9", administered=date(2026, 1, day),
                              total=phq, recorded_by=NURSE)
        app.record_assessment(episode_id, instrument="GAD-7", administered=date(2026, 1, day),
                              total=gad, recorded_by=NURSE)
    closed = app.close_episode(episode_id, discharged_on=date(2026, 1, 30), recorded_by=NURSE)
    assert isinstance(closed.outcome, kind)
    assert closed.outcome.as_json() == app.get_episode(episode_id).outcome


def test_the_assessments_query_lists_in_clinical_order(app: OutcomesApplication) -> None:
    episode_id = app.open_episode(patient_ref="pseudo-1", clinic_id="c-1", recorded_by=NURSE,
                                  criteria="frank1991", opened_on=date(2026, 1, 5)).episode_id
    for aid, when in (("late", datetime(2026, 1, 12, 17, tzinfo=UTC)),
                      ("first", date(2026, 1, 5)),
                      ("early", datetime(2026, 1, 12, 9, tzinfo=UTC)),
                      ("untimed", date(2026, 1, 12))):
        app.record_assessment(episode_id, instrument="PHQ-9", administered=when, total=12,
                              recorded_by=NURSE, assessment_id=aid)
    app.void_assessment(episode_id, "early", reason="wrong form", recorded_by=NURSE)
    listed = app.assessments(episode_id)
    assert [a.assessment_id for a in listed] == ["first", "untimed", "early", "late"]
    assert [(a.voided, a.void_reason) for a in listed] == [
        (False, None), (False, None), (True, "wrong form"), (False, None)]
    with pytest.raises(EpisodeNotFoundError):
        app.assessments(uuid4())
