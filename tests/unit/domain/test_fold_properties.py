"""Properties of the staging fold over generated PHQ-9 trajectories (SPEC G1, G2, §3).

The fold is a pure function: same input, same output (a); the arrival order of the rows does not
matter (b); every decision's evidence points at assessments of the input (c); and every decision is
dated at its confirming assessment (d). The course-level sets must give an outcome for any input.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.criteria.builtin import BUILTIN
from domain.criteria.fold import FoldResult, Observation, fold

LONGITUDINAL = ["frank1991", "frank1991-rec26w", "acnp2006", "acnp2006-symptom"]
COURSE_LEVEL = ["nhs-talking-therapies-2024", "cms159"]
START = date(2025, 1, 6)

# A course is drawn as segments of 1-8 assessments in one PHQ-9 zone (minimal 0-4, mild 5-9,
# syndromal 10-27), with gaps mostly within max_gap_days, so that runs form and remission,
# recovery, relapse and recurrence all occur. Each assessment is a total or nine items (0-3, or
# None = missing, one in eight); every item is one draw, which keeps generation cheap.
ZONES = {
    "minimal": (st.integers(0, 4), (0, 0, 0, 0, 0, 1, 1, None)),
    "mild": (st.integers(5, 9), (0, 0, 1, 1, 1, 2, 3, None)),
    "syndromal": (st.integers(10, 27), (0, 1, 2, 2, 3, 3, 3, None)),
}
ANSWERS = {zone: st.one_of(total.map(lambda t: (t, None)),
                           st.tuples(*[st.sampled_from(pool)] * 9).map(lambda i: (None, i)))
           for zone, (total, pool) in ZONES.items()}
# The baseline: a syndromal total two times in three, else any answer of any zone.
BASELINE = st.one_of(st.integers(10, 27).map(lambda t: (t, None)),
                     st.integers(10, 27).map(lambda t: (t, None)),
                     *ANSWERS.values())
segments = st.lists(st.tuples(st.sampled_from(sorted(ZONES)), st.integers(1, 8)),
                    min_size=0, max_size=8)
gap = st.one_of(st.integers(1, 14), st.integers(7, 28), st.integers(1, 35))


@st.composite
def trajectories(draw: st.DrawFn, amendments: bool = False) -> list[Observation]:
    """1-25 PHQ-9 assessments, one per date, dates 1-35 days apart. With ``amendments``, some
    dates get a second record, recorded an hour later, that replaces the first (G2)."""
    zones = [zone for zone, length in draw(segments) for _ in range(length)][:24]
    answers = [draw(BASELINE)] + [draw(ANSWERS[zone]) for zone in zones]
    rows, on = [], START
    for index, (total, items) in enumerate(answers):
        on += timedelta(days=draw(gap) if index else 0)
        rows.append(Observation(f"a{index:02d}", "PHQ-9", on, items=items, total=total,
                                recorded_at=_at(on, 12)))
        if amendments and draw(st.integers(0, 4)) == 0:
            total, items = draw(ANSWERS["mild"])
            rows.append(Observation(f"a{index:02d}-amended", "PHQ-9", on, items=items,
                                    total=total, recorded_at=_at(on, 13)))
    return rows


def _at(on: date, hour: int) -> datetime:
    return datetime(on.year, on.month, on.day, hour, tzinfo=UTC)


def snapshot(result: FoldResult) -> tuple[Any, ...]:
    return ([e.as_dict() for e in result.events], result.outcome,
            {k: result.scores[k] for k in sorted(result.scores)})


def cited(evidence: Any) -> list[dict[str, Any]]:
    """The assessment references of an event's evidence: its "assessments" and its "baseline"."""
    refs = list(evidence.get("assessments", []))
    if "baseline" in evidence:
        refs.append(evidence["baseline"])
    return refs


fold_settings = settings(max_examples=150, deadline=None)
every_set = st.sampled_from(LONGITUDINAL + COURSE_LEVEL)


@fold_settings
@given(trajectories(), every_set)
def test_the_fold_is_deterministic(rows, criteria_id):
    criteria = BUILTIN[criteria_id]
    assert snapshot(fold(rows, criteria)) == snapshot(fold(list(rows), criteria))


@fold_settings
@given(trajectories(amendments=True), every_set, st.randoms(use_true_random=False))
def test_the_fold_does_not_depend_on_arrival_order(rows, criteria_id, rnd):
    criteria = BUILTIN[criteria_id]
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert snapshot(fold(shuffled, criteria)) == snapshot(fold(rows, criteria))


@fold_settings
@given(trajectories(amendments=True), st.sampled_from(LONGITUDINAL))
def test_every_decision_cites_assessments_of_the_input(rows, criteria_id):
    by_id = {row.assessment_id: row for row in rows}
    for event in fold(rows, BUILTIN[criteria_id]).events:
        refs = cited(event.evidence)
        assert refs, f"{event.type} on {event.date} cites no assessment"
        for ref in refs:
            assert ref["assessment_id"] in by_id
            assert ref["date"] == by_id[ref["assessment_id"]].on.isoformat()


@fold_settings
@given(trajectories(), st.sampled_from(LONGITUDINAL))
def test_every_decision_is_dated_at_its_confirming_assessment(rows, criteria_id):
    by_id = {row.assessment_id: row for row in rows}
    result = fold(rows, BUILTIN[criteria_id])
    scorable = [row.on for row in rows if result.scores[row.assessment_id].scorable]
    for event in result.events:
        assert event.assessment_id in by_id
        assert by_id[event.assessment_id].on == event.date
        if event.onset is not None:
            assert event.onset <= event.date
        if event.type != "SafetyItemPositive":  # stages never precede the baseline (G4)
            assert event.date >= min(scorable)


@settings(max_examples=60, deadline=None)
@given(trajectories(amendments=True), st.sampled_from(COURSE_LEVEL))
def test_course_outcomes_are_computed_for_any_trajectory(rows, criteria_id):
    outcome = fold(rows, BUILTIN[criteria_id]).outcome
    assert outcome is not None
    flag = "met" if criteria_id == "cms159" else "eligible"
    assert isinstance(outcome[flag], bool)
