"""The shared clinical rules of ``domain.rules``, as tables: stage, baseline, evaluable,
milestones, and the cohort and NHS Talking Therapies figures with their denominators."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from domain.criteria.builtin import get_criteria
from domain.criteria.fold import Observation
from domain.rules import (
    CohortFigures,
    Decision,
    EpisodeOutcome,
    Rate,
    baseline,
    cohort_figures,
    current_stage,
    episode_outcome,
    is_evaluable,
    milestones,
    talking_therapies_figures,
)

D = date.fromisoformat


def decision(type_: str, day: str, degree: str | None = None,
             baseline_day: str | None = "2026-01-05") -> Decision:
    return Decision(type_, D(day), degree, D(baseline_day) if baseline_day else None)


@pytest.mark.parametrize(("decisions", "stage"), [
    ([], "episode"),
    ([decision("SafetyItemPositive", "2026-01-05")], "episode"),
    ([decision("BaselineBelowThreshold", "2026-01-05")], "below_threshold"),
    ([decision("ResponseReached", "2026-01-26")], "response"),
    # response on the day of a remission does not outrank it (SPEC §2.2)
    ([decision("RemissionReached", "2026-02-09", "full"),
      decision("ResponseReached", "2026-02-09")], "remission"),
    ([decision("RemissionReached", "2026-02-02", "partial")], "partial_remission"),
    ([decision("RecoveryConfirmed", "2026-04-06"), decision("RecurrenceDetected", "2026-08-17"),
      decision("ResponseReached", "2026-09-14")], "response"),
    ([decision("RemissionReached", "2026-02-09", "full"),
      decision("RelapseDetected", "2026-03-09")], "relapse"),
], ids=["none", "safety", "below", "response", "remission-same-day", "partial",
        "response-after-recurrence", "relapse"])
def test_current_stage(decisions: list[Decision], stage: str) -> None:
    assert current_stage(decisions) == stage


def test_milestones_take_the_first_of_each_and_count_days_from_its_baseline() -> None:
    found = milestones([
        decision("RemissionReached", "2026-03-02", "full"),
        decision("ResponseReached", "2026-01-26"),
        decision("RemissionReached", "2026-02-09", "partial"),
        decision("RecurrenceDetected", "2026-08-17"),
        # after the recurrence, a second response against the new baseline (C10): not counted
        decision("ResponseReached", "2026-09-14", baseline_day="2026-08-17"),
    ])
    assert (found.response, found.partial_remission, found.remission, found.recovery,
            found.relapse, found.recurrence) == (True, True, True, False, False, True)
    assert (found.days_to_response, found.days_to_remission) == (21, 56)


def obs(day: str, total: int | None, instrument: str = "PHQ-9", n: int = 0,
        items: tuple[int | None, ...] | None = None) -> Observation:
    return Observation(f"a-{day}-{instrument}-{n}", instrument, D(day), items, total)


UNSCORABLE_ITEMS = (1, None, None, None, 0, 0, 0, 0, 0)  # four missing (> 2, C2)


@pytest.mark.parametrize(("observations", "expected"), [
    ([], None),
    ([obs("2026-01-05", None, items=UNSCORABLE_ITEMS), obs("2026-01-05", 12, "GAD-7")], None),
    ([obs("2026-01-05", None, items=UNSCORABLE_ITEMS), obs("2026-01-12", 14)], "2026-01-12"),
    ([obs("2026-01-05", 18), obs("2026-01-12", 14)], "2026-01-05"),
], ids=["none", "unscorable-phq9-and-gad7", "first-scorable", "first"])
def test_baseline_is_the_first_scorable_assessment_of_the_staged_instrument(
        observations: list[Observation], expected: str | None) -> None:
    found = baseline(observations, get_criteria("acnp2006"), "PHQ-9")
    assert (found.on.isoformat() if found else None) == expected


@pytest.mark.parametrize(("longitudinal", "has_baseline", "types", "expected"), [
    (True, True, [], True),
    (True, True, ["ResponseReached"], True),
    (True, True, ["BaselineBelowThreshold"], False),
    (True, False, [], False),
    (False, True, [], False),
])
def test_is_evaluable(longitudinal: bool, has_baseline: bool, types: list[str],
                      expected: bool) -> None:
    decisions = [decision(t, "2026-01-05") for t in types]
    assert is_evaluable(longitudinal=longitudinal, has_baseline=has_baseline,
                        decisions=decisions) is expected


def test_an_nhstt_episode_carries_its_course_only_once_closed() -> None:
    nhstt = get_criteria("nhs-talking-therapies-2024")
    course = {"appointments": 3, "case_at_start": True, "recovery": True}
    common: dict[str, Any] = {"criteria": nhstt, "has_baseline": True, "decisions": []}
    assert episode_outcome(**common, closed=False, course=course) == \
        EpisodeOutcome(talking_therapies=True)
    assert episode_outcome(**common, closed=True, course=course) == \
        EpisodeOutcome(closed=True, talking_therapies=True, course=course)


def course(appointments: int, **flags: bool | None) -> dict[str, Any]:
    keys = ("case_at_start", "recovery", "reliable_improvement", "reliable_deterioration",
            "reliable_recovery", "no_reliable_change")
    return {"appointments": appointments, **dict.fromkeys(keys), **flags}


def test_talking_therapies_figures_use_the_nhs_denominators() -> None:
    figures = talking_therapies_figures([
        course(4, case_at_start=True, recovery=True, reliable_improvement=True,
               reliable_recovery=True, reliable_deterioration=False, no_reliable_change=False),
        course(5, case_at_start=True, recovery=False, reliable_improvement=False,
               reliable_recovery=False, reliable_deterioration=True, no_reliable_change=False),
        course(3, case_at_start=False, reliable_improvement=False, reliable_deterioration=False,
               no_reliable_change=True),
        course(3),  # finished, PHQ-9 not paired (eligible: false): in every denominator
        course(2, case_at_start=True, recovery=True),  # one treatment appointment: not finished
    ])
    assert (figures.finished_courses, figures.case_at_start, figures.not_case_at_start) == \
        (4, 2, 1)
    assert figures.recovery == Rate(1, 3, 33.3)  # finished minus not at caseness (M192)
    assert figures.reliable_recovery == Rate(1, 3, 33.3)
    assert figures.reliable_improvement == Rate(1, 4, 25.0)  # all finished courses (M186)
    assert figures.reliable_deterioration == Rate(1, 4, 25.0)
    assert figures.no_reliable_change == Rate(1, 4, 25.0)


def test_cohort_figures_count_milestones_of_evaluable_episodes() -> None:
    figures = cohort_figures([
        EpisodeOutcome(evaluable=True, response=True, days_to_response=21, remission=True,
                       days_to_remission=56),
        EpisodeOutcome(evaluable=True, response=True, days_to_response=28, closed=True),
        EpisodeOutcome(below_threshold=True),
        EpisodeOutcome(response=True),  # not evaluable: not counted
    ])
    assert figures == CohortFigures(
        episodes=4, closed=1, below_threshold=1, evaluable=2,
        counts={"response": 2, "partial_remission": 0, "remission": 1, "recovery": 0,
                "relapse": 0, "recurrence": 0},
        rates={"response": 100.0, "partial_remission": 0.0, "remission": 50.0, "recovery": 0.0,
               "relapse": 0.0, "recurrence": 0.0},
        median_days_to_response=24.5, median_days_to_remission=56, talking_therapies=None)
    # one type whatever the count (was: 56, an int, for an odd count; 24.5 for an even one)
    assert type(figures.median_days_to_remission) is float


def test_an_empty_cohort_has_no_rates() -> None:
    figures = cohort_figures([])
    assert figures.episodes == 0 and set(figures.rates.values()) == {None}
