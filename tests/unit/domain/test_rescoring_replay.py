"""Shadow re-scoring in the pure domain: ``compare`` pairs decisions, ``replay`` re-scores one
episode's stored events under another criteria set as the record stood at ``as_of``.

The episodes are built with the Episode aggregate itself (no store): its pending events are the
stream ``replay`` reads. Expectations come from the pure fold over the same assessments.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from domain.criteria.builtin import get_criteria
from domain.criteria.fold import Observation, fold
from domain.episode import Episode
from domain.rescoring import compare, replay
from domain.rules import EpisodeOutcome

NOW = datetime(2027, 12, 31, tzinfo=UTC)
CLINICIAN = "clinician-0042"
# V7 of the public vectors: discharged on 2026-03-30, assessed until 2026-08-31.
V7 = [("2026-01-05", 17), ("2026-01-19", 10), ("2026-02-02", 6), ("2026-02-16", 4),
      ("2026-03-02", 3), ("2026-03-16", 2), ("2026-03-30", 3), ("2026-04-27", 2),
      ("2026-05-25", 3), ("2026-06-22", 2), ("2026-07-20", 4), ("2026-08-17", 13),
      ("2026-08-31", 15)]
V1 = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
      ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
      ("2026-03-02", 2), ("2026-03-16", 3), ("2026-03-30", 2), ("2026-04-13", 2),
      ("2026-04-27", 3), ("2026-05-11", 2), ("2026-05-25", 3), ("2026-06-08", 2),
      ("2026-06-22", 1)]


def d(type_: str, day: str, degree: str | None = None, onset: str | None = None) -> dict[str, Any]:
    return {"type": type_, "date": day, "degree": degree, "onset": onset}


def opened(criteria: str = "frank1991", instrument: str = "PHQ-9",
           clinic_id: str = "clinic-a") -> Episode:
    return Episode.open(episode_id=uuid4(), patient_ref="pseudo-1", clinic_id=clinic_id,
                        criteria=get_criteria(criteria), instrument=instrument,
                        opened_on=date(2026, 1, 5), recorded_by=CLINICIAN, now=NOW)


def record(episode: Episode, rows: list[tuple[str, int]], start: int = 1,
           instrument: str = "PHQ-9") -> None:
    for index, (day, total) in enumerate(rows, start=start):
        episode.record_assessment(assessment_id=f"row-{index:04d}", instrument=instrument,
                                  administered=date.fromisoformat(day), items=None, total=total,
                                  recorded_by=CLINICIAN, now=NOW)


def observations(rows: list[tuple[str, int]], start: int = 1,
                 instrument: str = "PHQ-9") -> list[Observation]:
    return [Observation(f"row-{i:04d}", instrument, date.fromisoformat(day), None, total)
            for i, (day, total) in enumerate(rows, start=start)]


def keys(decisions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["date"], e["degree"], e["onset"], e["assessment_id"]) for e in decisions]


def fold_dicts(obs: list[Observation], criteria: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [e.as_dict() for e in fold(obs, get_criteria(criteria), **kwargs).events]


# -- compare ------------------------------------------------------------------------------------

def test_compare_of_equal_histories_is_empty() -> None:
    history = [d("ResponseReached", "2026-01-19"), d("RemissionReached", "2026-02-09", "full",
                                                     "2026-01-26")]
    assert compare(history, list(history)) == {"added": [], "removed": [], "moved": []}


def test_compare_pairs_the_same_type_and_degree_on_another_date_as_moved() -> None:
    # Given a full remission that the new criteria confirm two weeks later, and a recovery
    # only the new criteria reach
    now = [d("ResponseReached", "2026-01-19"),
           d("RemissionReached", "2026-02-09", "full", "2026-01-26")]
    new = [d("ResponseReached", "2026-01-19"),
           d("RemissionReached", "2026-02-23", "full", "2026-02-09"),
           d("RecoveryConfirmed", "2026-04-06")]
    # Then the remission moved, the recovery is added, nothing is removed
    assert compare(now, new) == {
        "added": [d("RecoveryConfirmed", "2026-04-06")], "removed": [],
        "moved": [{"type": "RemissionReached", "degree": "full", "from": "2026-02-09",
                   "to": "2026-02-23", "onset_from": "2026-01-26", "onset_to": "2026-02-09"}]}


def test_compare_does_not_pair_another_degree_and_pairs_in_date_order() -> None:
    now = [d("RemissionReached", "2026-02-02", "partial", "2026-01-19"),
           d("RelapseDetected", "2026-03-01"), d("RelapseDetected", "2026-05-01")]
    new = [d("RemissionReached", "2026-02-16", "full", "2026-02-02"),
           d("RelapseDetected", "2026-03-15")]
    diff = compare(now, new)
    # A partial remission does not "move" into a full one: one removed, one added
    assert diff["added"] == [d("RemissionReached", "2026-02-16", "full", "2026-02-02")]
    # The earlier relapse is paired first; the later one has no partner left
    assert diff["removed"] == [d("RemissionReached", "2026-02-02", "partial", "2026-01-19"),
                               d("RelapseDetected", "2026-05-01")]
    assert [(m["type"], m["from"], m["to"]) for m in diff["moved"]] == \
        [("RelapseDetected", "2026-03-01", "2026-03-15")]


def test_compare_sees_a_changed_onset_on_the_same_date_as_a_move() -> None:
    diff = compare([d("RemissionReached", "2026-03-02", "full", "2026-02-02")],
                   [d("RemissionReached", "2026-03-02", "full", "2026-02-16")])
    assert diff["added"] == diff["removed"] == []
    assert diff["moved"] == [{"type": "RemissionReached", "degree": "full", "from": "2026-03-02",
                              "to": "2026-03-02", "onset_from": "2026-02-02",
                              "onset_to": "2026-02-16"}]


def test_compare_includes_safety_flags() -> None:
    diff = compare([d("SafetyItemPositive", "2026-01-05")], [])
    assert diff == {"added": [], "removed": [d("SafetyItemPositive", "2026-01-05")], "moved": []}


# -- replay -------------------------------------------------------------------------------------

def test_replay_gives_the_recorded_history_and_the_fold_of_the_new_criteria() -> None:
    # Given an episode under frank1991 with the rows of V1
    episode = opened("frank1991")
    record(episode, V1)
    events = episode.collect_events()
    # When it is re-scored under acnp2006
    result = replay(events, get_criteria("acnp2006"), NOW)
    # Then "now" is what was recorded, "new" is the acnp2006 fold of the same assessments
    assert result is not None
    assert result.episode_id == episode.id and result.clinic_id == "clinic-a"
    assert result.criteria_now == get_criteria("frank1991").ref()
    assert keys(result.now) == keys(fold_dicts(observations(V1), "frank1991"))
    assert result.new == fold_dicts(observations(V1), "acnp2006")
    assert result.stage_now == episode.stage == "recovery"
    assert result.error is None and result.outcome_new is None
    assert result.diff == compare(result.now, result.new)
    assert result.changed
    # V1 under frank1991: response 01-26 (21 days after the 01-05 baseline), partial and full
    # remission (02-23: 49 days), recovery; no relapse or recurrence
    assert result.milestones_now == EpisodeOutcome(
        evaluable=True, response=True, partial_remission=True, remission=True, recovery=True,
        days_to_response=21, days_to_remission=49)


def test_replay_under_the_criteria_in_force_changes_nothing() -> None:
    episode = opened("acnp2006")
    record(episode, V1)
    result = replay(episode.collect_events(), get_criteria("acnp2006"), NOW)
    assert result is not None
    assert keys(result.now) == keys(result.new)
    assert not result.changed
    assert result.milestones_now == result.milestones_new


def test_replay_as_of_cuts_the_events_recorded_later() -> None:
    # Given an episode whose last assessments were recorded after a moment `cut`
    episode = opened("frank1991")
    record(episode, V1[:8])
    cut = episode.pending_events[-1].timestamp
    time.sleep(0.002)  # the later events get a later timestamp
    record(episode, V1[8:], start=9)
    events = episode.collect_events()
    # When re-scored as of `cut`
    result = replay(events, get_criteria("acnp2006"), cut)
    # Then only the first eight assessments count, before and after
    assert result is not None
    assert result.new == fold_dicts(observations(V1[:8]), "acnp2006")
    assert keys(result.now) == keys(fold_dicts(observations(V1[:8]), "frank1991"))
    # ... and as of now all of them
    later = replay(events, get_criteria("acnp2006"), NOW)
    assert later is not None and later.new == fold_dicts(observations(V1), "acnp2006")


def test_replay_before_the_episode_was_opened_is_none() -> None:
    episode = opened()
    events = episode.collect_events()
    assert replay(events, get_criteria("acnp2006"), datetime(2020, 1, 1, tzinfo=UTC)) is None


def test_replay_leaves_voided_assessments_out() -> None:
    # Given V1 with the 02-09 score (row 6) entered in error
    episode = opened("frank1991")
    record(episode, V1)
    episode.void_assessment(assessment_id="row-0006", reason="wrong patient",
                            recorded_by=CLINICIAN)
    result = replay(episode.collect_events(), get_criteria("acnp2006"), NOW)
    valid = [o for o in observations(V1) if o.assessment_id != "row-0006"]
    # Then neither history uses it
    assert result is not None
    assert result.new == fold_dicts(valid, "acnp2006")
    assert keys(result.now) == keys(fold_dicts(valid, "frank1991"))
    assert "row-0006" not in {e["assessment_id"] for e in result.now + result.new}


def test_replay_follows_an_adoption_and_its_retractions() -> None:
    # Given an episode that moved from frank1991 to acnp2006
    episode = opened("frank1991")
    record(episode, V1)
    episode.adopt_criteria(criteria=get_criteria("acnp2006"), reason="clinic policy",
                           recorded_by="lead-7", now=NOW)
    # When re-scored under frank1991 again
    result = replay(episode.collect_events(), get_criteria("frank1991"), NOW)
    # Then "now" is the acnp2006 history (retracted decisions gone), "new" the frank1991 fold
    assert result is not None
    assert result.criteria_now == get_criteria("acnp2006").ref()
    assert keys(result.now) == keys(fold_dicts(observations(V1), "acnp2006"))
    assert result.new == fold_dicts(observations(V1), "frank1991")


def test_replay_uses_the_discharge_of_a_closed_episode_for_nhs_talking_therapies() -> None:
    # Given V7 recorded in full under frank1991 and discharged on 2026-03-30
    episode = opened("frank1991")
    record(episode, V7)
    before_close = episode.pending_events[-1].timestamp
    time.sleep(0.002)
    episode.close(discharged_on=date(2026, 3, 30), recorded_by=CLINICIAN, now=NOW)
    events = episode.collect_events()
    nhstt = get_criteria("nhs-talking-therapies-2024")
    # When re-scored under NHS Talking Therapies
    result = replay(events, nhstt, NOW)
    # Then the course ends at the discharge, not at the last assessment
    assert result is not None and result.outcome_new is not None
    expected = fold(observations(V7), nhstt, discharge=date(2026, 3, 30)).outcome
    assert result.outcome_new == expected
    assert result.outcome_new["discharge"] == "2026-03-30"
    assert result.new == []  # no safety flags, and NHS TT has no longitudinal stages
    assert result.milestones_new.evaluable is False
    # ... and as of before the discharge was recorded, the course ran to the last assessment
    open_then = replay(events, nhstt, before_close)
    assert open_then is not None and open_then.outcome_new is not None
    assert open_then.outcome_new["discharge"] == "2026-08-31"
    assert open_then.outcome_new == fold(observations(V7), nhstt).outcome


def test_replay_under_cms159_gives_its_outcome() -> None:
    rows = [("2026-01-05", 16), ("2026-06-01", 6), ("2026-11-02", 4), ("2026-12-14", 7),
            ("2027-02-22", 3)]
    episode = opened("acnp2006")
    record(episode, rows)
    result = replay(episode.collect_events(), get_criteria("cms159"), NOW)
    assert result is not None and result.outcome_new is not None
    assert result.outcome_new == fold(observations(rows), get_criteria("cms159")).outcome
    assert result.outcome_new["met"] is True


def test_replay_under_a_set_that_cannot_stage_the_instrument_reports_an_error() -> None:
    # Given a HAM-D17 episode (frank1991 has HAM-D17 thresholds; the symptom rule needs PHQ-9)
    episode = opened("frank1991", instrument="HAM-D17")
    record(episode, [("2026-01-05", 24), ("2026-01-19", 10)], instrument="HAM-D17")
    result = replay(episode.collect_events(), get_criteria("acnp2006-symptom"), NOW)
    # Then the run carries the error code, no new decisions, and the episode is not evaluable
    assert result is not None
    assert result.error == "unstageable-instrument"
    assert result.new == [] and result.outcome_new is None
    assert result.milestones_new.evaluable is False
    assert result.now  # the recorded history is still shown
