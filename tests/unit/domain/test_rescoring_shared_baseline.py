"""The new side's baseline (G4) in ``domain.rescoring.rescore``: taken from the episode's own
when both sets score alike (missing-item policy and rounding), computed under the new set's
scoring otherwise. Either way it is what ``domain.rules.baseline`` gives under the new set."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from domain.criteria.builtin import get_criteria
from domain.criteria.sets import CriteriaSet
from domain.episode import Episode
from domain.rescoring import as_known_at, facts_of, rescore
from domain.rules import Decision, baseline, episode_outcome

NOW = datetime(2027, 12, 31, tzinfo=UTC)
# Two missing items first (prorated under prorate_le2, unscorable under the stricter policies),
# then complete answers.
FIRST = (3, 3, 3, 3, 3, 2, 2, None, None)
LATER = [(date(2026, 1, 19), (2, 2, 2, 2, 1, 1, 1, 1, 0)), (date(2026, 2, 2), (1,) * 8 + (0,))]


def episode_with_missing_items(criteria: str, *, later: bool) -> Episode:
    episode = Episode.open(episode_id=uuid4(), patient_ref="pseudo-1", clinic_id="clinic-a",
                           criteria=get_criteria(criteria), instrument="PHQ-9",
                           opened_on=date(2026, 1, 5), recorded_by="clinician-1", now=NOW)
    rows = [(date(2026, 1, 5), FIRST), *(LATER if later else [])]
    for n, (day, items) in enumerate(rows):
        episode.record_assessment(assessment_id=f"a{n}", instrument="PHQ-9", administered=day,
                                  items=list(items), total=None, recorded_by="clinician-1",
                                  now=NOW)
    return episode


def expected_outcome(facts, criteria: CriteriaSet, result):  # type: ignore[no-untyped-def]
    """The new side's outcome with the baseline computed under ``criteria`` (today's rule)."""
    return episode_outcome(
        criteria=criteria, closed=facts.closed_on is not None, course=result.outcome_new,
        decisions=[Decision.of(d["type"], date.fromisoformat(d["date"]), d["degree"],
                               d["evidence"]) for d in result.new],
        has_baseline=baseline(facts.valid, criteria, facts.instrument) is not None)


@pytest.mark.parametrize("later", [True, False])
@pytest.mark.parametrize("params", [None, {"missing_policy": "complete_only"},
                                    {"missing_policy": "prorate_le1"},
                                    {"rounding": "half_up"}])
def test_the_new_sides_baseline_is_the_new_sets_own(params, later) -> None:  # type: ignore[no-untyped-def]
    # Given an episode whose first assessment lacks two items, under frank1991 (prorate_le2)
    episode, known = as_known_at(episode_with_missing_items("frank1991", later=later)
                                 .collect_events(), NOW)
    assert episode is not None
    facts = facts_of(episode, known)
    assert facts.has_baseline is True
    # When it is re-scored under acnp2006 with the same or another scoring
    criteria = get_criteria("acnp2006").with_params(params or {})
    result = rescore(facts, criteria)
    # Then the new side counts it as the new set's own baseline rule does
    assert result.milestones_new == expected_outcome(facts, criteria, result)
    strict = (params or {}).get("missing_policy") in ("complete_only", "prorate_le1")
    assert (baseline(facts.valid, criteria, "PHQ-9") is None) is (strict and not later)
    assert result.milestones_new.evaluable is (not (strict and not later))
