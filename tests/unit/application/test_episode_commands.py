"""Episode commands through OutcomesApplication on the in-memory store: Given / When / Then.

What a stage event records (criteria, evidence, rule, explanation), how voids and same-day
replacements (G2) withdraw and re-assert decisions (SPEC §3), idempotent replays, the domain errors
(one class each, nothing appended, no personal data in the message), and the audit trail: every
event says who and for which clinical date, stored events never change, history as of a moment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.outcomes import CommandResult, OutcomesApplication
from domain.criteria.builtin import get_criteria
from domain.episode import Episode
from domain.errors import (
    AssessmentAlreadyVoidedError,
    AssessmentNotFoundError,
    DomainError,
    EpisodeClosedError,
    EpisodeNotFoundError,
    FutureDateError,
    IdempotencyConflictError,
    ItemOutOfRangeError,
    NaiveDatetimeError,
    UnknownCriteriaError,
    UnknownInstrumentError,
    VersionConflictError,
)

CLINICIAN = "clinician-0042"
PATIENT_REF = "PATIENT-7f3a-Doe-1970"
# SPEC §5 V1 (response -> remission -> recovery) and V6 (relapse), PHQ-9 totals.
V1 = [("01-05", 18), ("01-12", 16), ("01-19", 13), ("01-26", 8), ("02-02", 6), ("02-09", 4),
      ("02-16", 3), ("02-23", 4), ("03-02", 2), ("03-16", 3), ("03-30", 2), ("04-13", 2),
      ("04-27", 3), ("05-11", 2), ("05-25", 3), ("06-08", 2), ("06-22", 1)]
V6 = [("01-05", 19), ("01-19", 12), ("02-02", 8), ("02-16", 4), ("03-02", 3), ("03-16", 2),
      ("03-30", 12), ("04-13", 14)]
# SPEC §5 V11: weekly scores as recorded up to 2026-03-09; then 02-05 (6) turns up on paper.
V11 = [("01-05", 15), ("01-12", 11), ("01-19", 7), ("01-26", 4), ("02-02", 3), ("02-09", 4),
       ("02-16", 2), ("02-23", 3), ("03-02", 2), ("03-09", 3)]


def day(month_day: str) -> date:
    return date.fromisoformat(f"2026-{month_day}")


def open_episode(app: OutcomesApplication, criteria: str = "acnp2006") -> UUID:
    return app.open_episode(patient_ref=PATIENT_REF, clinic_id="clinic-1", recorded_by=CLINICIAN,
                            criteria=criteria, opened_on=day("01-05")).episode_id


def record(app: OutcomesApplication, episode_id: UUID, month_day: str, total: int | None = None,
           **kwargs: Any) -> CommandResult:
    kwargs.setdefault("assessment_id", f"a-{month_day}")
    kwargs.setdefault("instrument", "PHQ-9")
    kwargs.setdefault("recorded_by", CLINICIAN)
    return app.record_assessment(episode_id, administered=day(month_day), total=total, **kwargs)


def record_all(app: OutcomesApplication, episode_id: UUID,
               rows: list[tuple[str, int]]) -> list[CommandResult]:
    return [record(app, episode_id, d, s) for d, s in rows]


def stored_count(app: OutcomesApplication) -> int:
    """Events in the whole store (every episode): a rejected command must not change it."""
    return app.recorder.max_notification_id() or 0


def snapshot(app: OutcomesApplication, episode_id: UUID) -> list[tuple[str, int, dict[str, Any]]]:
    return [(type(e).__name__, e.originator_version, dict(e.__dict__))
            for e in app.episode_events(episode_id)]


# -- what a stage event records ------------------------------------------------------------


@pytest.mark.parametrize("criteria", ["acnp2006", "frank1991", "frank1991|rounding=half_up"])
def test_response_event_records_criteria_evidence_rule_and_explanation(
        app: OutcomesApplication, criteria: str) -> None:
    # Given V1 up to the week before response
    episode_id = open_episode(app, criteria)
    record_all(app, episode_id, V1[:3])
    # When the 01-26 score of 8 is recorded
    result = record(app, episode_id, "01-26", 8)
    # Then one ResponseReached says under which rules, from what evidence, and why
    (event,) = [e.as_json() for e in result.stage_events]
    ref = get_criteria(criteria).ref()
    assert event["type"] == "ResponseReached"
    assert event["date"] == "2026-01-26"
    assert event["assessment_id"] == "a-01-26"
    assert event["criteria"] == ref == {"id": criteria, "version": ref["version"],
                                        "hash": ref["hash"]}
    assert event["rule"] == "response (G6)"
    assert event["explanation"] == (
        f"PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26: response under {criteria} "
        f"v{ref['version']}")
    assert event["recorded_by"] == CLINICIAN
    assert event["caused_by"] == "assessment:a-01-26"
    evidence = event["evidence"]
    baseline = evidence["baseline"]
    assert (baseline["assessment_id"], baseline["date"], baseline["instrument"]) == \
        ("a-01-05", "2026-01-05", "PHQ-9")
    assert [(a["assessment_id"], str(a["score"])) for a in [baseline, *evidence["assessments"]]] \
        == [("a-01-05", "18"), ("a-01-05", "18"), ("a-01-26", "8")]
    known = app.get_episode(episode_id).assessments
    assert {a["assessment_id"] for a in evidence["assessments"]} <= set(known)


def test_acnp2006_response_explanation_reads_as_the_issue_states(app: OutcomesApplication) -> None:
    episode_id = open_episode(app, "acnp2006")
    results = record_all(app, episode_id, V1[:4])
    assert [e.explanation for e in results[-1].stage_events] == [
        "PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26: response under acnp2006 v1.0.0"]


def test_every_stage_event_names_existing_assessments_as_evidence(app: OutcomesApplication) -> None:
    # Given V1 recorded under frank1991 (response, partial and full remission, recovery)
    episode_id = open_episode(app, "frank1991")
    record_all(app, episode_id, V1)
    known = set(app.get_episode(episode_id).assessments)
    history = app.stage_history(episode_id)
    assert [e["type"] for e in history] == ["ResponseReached", "RemissionReached",
                                           "RemissionReached", "RecoveryConfirmed"]
    for event in history:
        cited = {a["assessment_id"] for a in event["evidence"]["assessments"]}
        assert event["assessment_id"] in cited <= known
        assert event["evidence"]["baseline"]["assessment_id"] == "a-01-05"
        assert event["criteria"] == get_criteria("frank1991").ref()
        assert event["rule"] and event["explanation"].endswith("under frank1991 v1.0.0-draft")


@pytest.mark.parametrize(("criteria", "rows", "stage"), [
    ("acnp2006", V1, "recovery"),
    ("frank1991", V6, "relapse"),
])
def test_current_stage(app: OutcomesApplication, criteria: str, rows: list[tuple[str, int]],
                       stage: str) -> None:
    episode_id = open_episode(app, criteria)
    results = record_all(app, episode_id, rows)
    assert results[-1].stage == stage
    assert app.get_episode(episode_id).stage == stage


# -- voids and same-day replacements change the past by retraction ------------------------


def test_void_retracts_what_the_assessment_confirmed_and_reasserts_what_holds(
        app: OutcomesApplication) -> None:
    # Given a response confirmed by the 01-26 score, with 02-02 also a response-level score
    episode_id = open_episode(app)
    record(app, episode_id, "01-05", 18)
    (response,) = record(app, episode_id, "01-26", 8).stage_events
    record(app, episode_id, "02-02", 6)
    # When the 01-26 assessment is voided as entered in error
    result = app.void_assessment(episode_id, "a-01-26", reason="entered in error",
                                 recorded_by="clinician-0007")
    # Then the response it confirmed is withdrawn by name, and 02-02 now confirms the response
    assert [(r.stage_id, r.retracted_type, r.date, r.caused_by, r.recorded_by)
            for r in result.retracted] == [(response.stage_id, "ResponseReached", day("01-26"),
                                            "void:a-01-26", "clinician-0007")]
    assert [(e.type, e.date, e.assessment_id) for e in result.stage_events] == \
        [("ResponseReached", day("02-02"), "a-02-02")]
    assert [(e["type"], e["date"]) for e in app.stage_history(episode_id)] == \
        [("ResponseReached", "2026-02-02")]
    # And the voided assessment stays in the record, marked
    voided = app.get_episode(episode_id).assessments["a-01-26"]
    assert (voided.voided, voided.void_reason) == (True, "entered in error")
    events = app.episode_events(episode_id)
    assert [e.assessment_id for e in events if isinstance(e, Episode.AssessmentRecorded)] == \
        ["a-01-05", "a-01-26", "a-02-02"]
    (void,) = [e for e in events if isinstance(e, Episode.AssessmentVoided)]
    assert (void.assessment_id, void.clinical_date) == ("a-01-26", day("01-26"))


def test_same_day_replacement_the_later_recorded_wins(app: OutcomesApplication) -> None:
    # Given a response on 01-26
    episode_id = open_episode(app)
    record(app, episode_id, "01-05", 18)
    (response,) = record(app, episode_id, "01-26", 8).stage_events
    # When a second PHQ-9 for 01-26 is recorded with 12 (an amendment, G2)
    amended = record(app, episode_id, "01-26", 12, assessment_id="a-01-26-amended")
    # Then the response is withdrawn and nothing replaces it
    assert [r.stage_id for r in amended.retracted] == [response.stage_id]
    assert amended.stage_events == ()
    assert app.stage_history(episode_id) == []
    assert amended.stage == "episode"
    # When a third record for the same day says 9
    again = record(app, episode_id, "01-26", 9, assessment_id="a-01-26-second-amendment")
    # Then the latest record decides: response on 01-26, confirmed by that record
    assert [(e.type, e.date, e.assessment_id) for e in again.stage_events] == \
        [("ResponseReached", day("01-26"), "a-01-26-second-amendment")]
    assert again.retracted == ()


# -- idempotency --------------------------------------------------------------------------


def test_replay_with_same_id_and_content_returns_the_first_result(app: OutcomesApplication) -> None:
    # Given the 01-26 assessment recorded once, and something recorded after it
    episode_id = open_episode(app)
    record(app, episode_id, "01-05", 18)
    first = record(app, episode_id, "01-26", 8)
    record(app, episode_id, "02-02", 6)
    version, count = app.get_episode(episode_id).version, stored_count(app)
    # When the same command arrives again
    replay = record(app, episode_id, "01-26", 8)
    # Then it is a no-op that returns what the first one decided
    assert replay.replayed is True and first.replayed is False
    assert replay.stage_events == first.stage_events
    assert replay.retracted == first.retracted == ()
    assert replay.assessment == first.assessment
    assert replay.position is None
    assert replay.version == version == app.get_episode(episode_id).version
    assert stored_count(app) == count


def test_replay_with_same_id_and_other_content_is_rejected(app: OutcomesApplication) -> None:
    episode_id = open_episode(app)
    record(app, episode_id, "01-05", 18)
    record(app, episode_id, "01-26", 8)
    count = stored_count(app)
    with pytest.raises(IdempotencyConflictError) as caught:
        record(app, episode_id, "01-26", 9)
    assert "a-01-26" in str(caught.value)
    assert PATIENT_REF not in str(caught.value)
    assert stored_count(app) == count


# -- domain errors ------------------------------------------------------------------------


@pytest.fixture
def episode_id(app: OutcomesApplication) -> UUID:
    """An open acnp2006 episode with a baseline and one voided assessment."""
    episode_id = open_episode(app)
    record(app, episode_id, "01-05", 18)
    record(app, episode_id, "01-12", 16)
    app.void_assessment(episode_id, "a-01-12", reason="wrong patient", recorded_by=CLINICIAN)
    return episode_id


def _record_at(administered: date | datetime, **kwargs: Any) -> Callable[..., Any]:
    arguments = {"instrument": "PHQ-9", "total": 10, **kwargs}
    return lambda app, episode_id: app.record_assessment(
        episode_id, administered=administered, recorded_by=CLINICIAN, **arguments)


REJECTIONS = [
    pytest.param(FutureDateError, _record_at(date(2028, 1, 1)), "administered_on", id="future"),
    pytest.param(NaiveDatetimeError, _record_at(datetime(2026, 1, 19, 9, 30)), "administered_on",
                 id="naive-datetime"),
    pytest.param(UnknownInstrumentError, _record_at(day("01-19"), instrument="PHQ-10"), "PHQ-10",
                 id="unknown-instrument"),
    pytest.param(ItemOutOfRangeError,
                 _record_at(day("01-19"), total=None, items=[0, 0, 0, 0, 0, 0, 0, 0, 4]), None,
                 id="item-out-of-range"),
    pytest.param(VersionConflictError, _record_at(day("01-19"), expected_version=2), "version",
                 id="stale-expected-version"),
    pytest.param(EpisodeNotFoundError, lambda app, _: app.record_assessment(
        UUID(int=7), instrument="PHQ-9", administered=day("01-19"), total=10,
        recorded_by=CLINICIAN), str(UUID(int=7)), id="unknown-episode"),
    pytest.param(AssessmentNotFoundError, lambda app, episode_id: app.void_assessment(
        episode_id, "a-never", reason="typo", recorded_by=CLINICIAN), "a-never",
        id="void-unknown-assessment"),
    pytest.param(AssessmentAlreadyVoidedError, lambda app, episode_id: app.void_assessment(
        episode_id, "a-01-12", reason="again", recorded_by=CLINICIAN), "a-01-12",
        id="void-twice"),
]


@pytest.mark.parametrize(("error", "command", "mentions"), REJECTIONS)
def test_rejected_command_appends_nothing_and_names_no_patient(
        app: OutcomesApplication, episode_id: UUID, error: type[DomainError],
        command: Callable[[OutcomesApplication, UUID], Any], mentions: str | None) -> None:
    # Given an open episode
    version, count = app.get_episode(episode_id).version, stored_count(app)
    # When a command it must refuse arrives
    with pytest.raises(DomainError) as caught:
        command(app, episode_id)
    # Then the error is the one class for that failure, with a code and ids, without personal data
    assert type(caught.value) is error
    assert caught.value.code == error.code != DomainError.code
    message = str(caught.value)
    assert PATIENT_REF not in message
    if mentions:
        assert mentions in message or mentions == caught.value.field
    # And nothing was appended
    assert app.get_episode(episode_id).version == version
    assert stored_count(app) == count


def test_closed_episode_refuses_record_void_and_close(app: OutcomesApplication,
                                                      episode_id: UUID) -> None:
    # Given a discharged episode
    app.close_episode(episode_id, discharged_on=day("02-02"), recorded_by=CLINICIAN)
    version, count = app.get_episode(episode_id).version, stored_count(app)
    commands = [
        lambda: record(app, episode_id, "02-09", 4),
        lambda: app.void_assessment(episode_id, "a-01-05", reason="typo", recorded_by=CLINICIAN),
        lambda: app.close_episode(episode_id, discharged_on=day("02-09"), recorded_by=CLINICIAN),
    ]
    for command in commands:
        # When it is asked to change, Then it refuses and appends nothing
        with pytest.raises(EpisodeClosedError) as caught:
            command()
        assert str(episode_id) in str(caught.value)
        assert PATIENT_REF not in str(caught.value)
        assert (app.get_episode(episode_id).version, stored_count(app)) == (version, count)


def test_unknown_criteria_opens_nothing(app: OutcomesApplication) -> None:
    with pytest.raises(UnknownCriteriaError) as caught:
        app.open_episode(patient_ref=PATIENT_REF, clinic_id="clinic-1", recorded_by=CLINICIAN,
                         criteria="frank1992", opened_on=day("01-05"))
    assert "frank1992" in str(caught.value)
    assert PATIENT_REF not in str(caught.value)
    assert stored_count(app) == 0


def test_expected_version_that_is_current_is_accepted(app: OutcomesApplication,
                                                      episode_id: UUID) -> None:
    version = app.get_episode(episode_id).version
    result = record(app, episode_id, "01-19", 13, expected_version=version)
    assert result.version == version + 1


# -- the audit trail ----------------------------------------------------------------------


def test_every_stored_event_says_who_and_for_which_clinical_date(app: OutcomesApplication) -> None:
    # Given an episode with assessments, stage decisions, a void, a retraction and a discharge
    episode_id = open_episode(app, "frank1991")
    record_all(app, episode_id, V1[:8])
    app.void_assessment(episode_id, "a-02-09", reason="wrong form", recorded_by="clinician-0007")
    app.close_episode(episode_id, discharged_on=day("02-23"), recorded_by="clinician-0009")
    events = app.episode_events(episode_id)
    kinds = {type(e).__name__ for e in events}
    assert {"Opened", "AssessmentRecorded", "ResponseReached", "RemissionReached",
            "StageRetracted", "AssessmentVoided", "Closed"} <= kinds
    for event in events:
        assert isinstance(event.recorded_by, str) and event.recorded_by
        assert type(event.clinical_date) is date
    assert {e.recorded_by for e in events} == {CLINICIAN, "clinician-0007", "clinician-0009"}
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))


def test_stored_events_are_never_changed_by_a_backdated_insert(app: OutcomesApplication) -> None:
    # Given V11 as recorded up to 03-09
    episode_id = open_episode(app, "frank1991")
    record_all(app, episode_id, V11)
    before = snapshot(app, episode_id)
    # When the back-dated 02-05 score arrives
    result = record(app, episode_id, "02-05", 6)
    # Then the earlier events are all still there, unchanged; the change is new events only
    after = snapshot(app, episode_id)
    assert after[:len(before)] == before
    assert [kind for kind, _, _ in after[len(before):]] == \
        ["AssessmentRecorded", "StageRetracted", "RemissionReached"]
    assert result.retracted[0].stage_id in {state.get("stage_id") for _, _, state in before}


def test_history_as_of_a_moment_and_with_retractions(app: OutcomesApplication) -> None:
    # Given V11 under frank1991, and the moment its last row was stored
    episode_id = open_episode(app, "frank1991")
    record_all(app, episode_id, V11)
    earlier = app.stage_history(episode_id)
    moment = app.episode_events(episode_id)[-1].timestamp
    # When the back-dated score is recorded afterwards
    insert = record(app, episode_id, "02-05", 6)
    # Then the history as of that moment is the earlier one
    assert app.stage_history(episode_id, as_of=moment) == earlier
    assert [(e["type"], e["date"], e["degree"]) for e in earlier] == [
        ("ResponseReached", "2026-01-19", None), ("RemissionReached", "2026-02-02", "partial"),
        ("RemissionReached", "2026-02-09", "full")]
    # And the current history shows the new decision instead of the withdrawn one
    assert [(e["type"], e["date"], e["degree"]) for e in app.stage_history(episode_id)] == [
        ("ResponseReached", "2026-01-19", None), ("RemissionReached", "2026-02-02", "partial"),
        ("RemissionReached", "2026-02-23", "full")]
    # And with retractions, the withdrawn decision is there, marked with its retraction
    full = app.stage_history(episode_id, include_retracted=True)
    assert [(e["date"], e["retracted"] is not None) for e in full] == [
        ("2026-01-19", False), ("2026-02-02", False), ("2026-02-09", True), ("2026-02-23", False)]
    withdrawn = full[2]
    assert withdrawn["retracted"] == insert.retracted[0].as_json()
    assert withdrawn["retracted"]["stage_id"] == withdrawn["stage_id"]
    assert withdrawn["retracted"]["caused_by"] == "assessment:a-02-05"


def test_datetime_with_offset_is_staged_on_its_local_date(app: OutcomesApplication) -> None:
    # Given a form filled in at 00:30 in UTC+01:00, which is still the previous day in UTC
    episode_id = open_episode(app)
    administered = datetime(2026, 1, 12, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    # When it is recorded
    result = app.record_assessment(episode_id, instrument="PHQ-9", administered=administered,
                                   total=14, recorded_by=CLINICIAN, assessment_id="a-local")
    # Then its clinical date is the local date, and the moment itself is kept
    assert result.assessment is not None
    assert result.assessment.administered_on == date(2026, 1, 12)
    assert result.assessment.administered_at == administered
    assert result.assessment.as_json()["administered_at"] == "2026-01-12T00:30:00+01:00"
    (recorded,) = [e for e in app.episode_events(episode_id)
                   if isinstance(e, Episode.AssessmentRecorded)]
    assert recorded.clinical_date == date(2026, 1, 12)
    assert recorded.administered_at == administered


def test_unknown_episode_has_no_events_or_history(app: OutcomesApplication) -> None:
    with pytest.raises(EpisodeNotFoundError):
        app.stage_history(uuid4())
