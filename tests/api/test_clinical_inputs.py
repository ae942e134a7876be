"""The HTTP API and the clinical inputs of SPEC §1.2, §1.2b and G2: a PHQ-8, a GAD-7 with its
difficulty question, and two administrations of one day told apart by their times."""

from __future__ import annotations


def test_a_phq8_is_recorded_as_its_own_instrument(api):
    episode_id = api.open()

    body = api.record(episode_id, "2026-01-05T09:30:00+01:00", instrument="PHQ-8",
                      items=[3, 2, 2, 1, 1, 1, 0, 0])

    assert (body["total"], body["severity"], body["flags"]) == (10, "moderate", [])
    assert body["assessment"]["instrument"] == "PHQ-8"


def test_a_gad7_with_its_difficulty_answer_is_recorded_and_the_answer_not_summed(api):
    episode_id = api.open()

    body = api.record(episode_id, "2026-01-05", instrument="GAD-7",
                      items=[1, 2, 1, 0, 0, 1, 1, 3])

    assert (body["total"], body["severity"], body["flags"]) == (6, "mild", [])
    assert body["assessment"]["items"] == [1, 2, 1, 0, 0, 1, 1, 3]


def test_a_09_00_form_entered_after_a_17_00_administration_leaves_the_response_standing(api):
    episode_id = api.open(criteria="frank1991")
    api.record(episode_id, "2026-01-05T09:30:00+00:00", 16)
    evening = api.record(episode_id, "2026-01-19T17:00:00+00:00", 7)
    assert [e["type"] for e in evening["stage_events"]] == ["ResponseReached"]

    morning = api.record(episode_id, "2026-01-19T09:00:00+00:00", 12)

    assert (morning["stage"], morning["stage_events"]) == ("response", [])
    stages = api.get(f"/episodes/{episode_id}/stages")
    assert [(e["type"], e["date"]) for e in stages["events"]] == [
        ("ResponseReached", "2026-01-19")]
