"""The fold in integer arithmetic gives exactly what the all-``Fraction`` fold gave (ADR 0027).

Whole scores are ints and the response rule is cross-multiplied; only a prorated total with a
remainder is a Fraction. The oracle is the fold as it was before: ``score`` and ``round_total``
returning Fractions for every value, and the response rule as ``B - s < f x B`` in Fractions,
copied below from the last all-Fraction commit and patched in. Every other comparison of the
fold (zones, caseness, reliable change, CMS159) is unchanged code, so with the oracle's Fraction
inputs it is the old fold exactly. Compared: every decision (as JSON, explanations included),
the course outcome and every assessment's score, on every public vector and on generated
trajectories under every built-in set and the rounding, missing-item and response variants.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from unittest import mock

import pytest
from criteria_vectors import VECTORS
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import instruments
from domain.criteria import longitudinal, timeline
from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import FoldResult, Observation, fold
from domain.criteria.sets import CriteriaSet
from domain.instruments import (
    PRORATED,
    TOTAL_ABOVE_MAX,
    TOTAL_MISMATCH,
    UNSCORABLE,
    Instrument,
    MissingPolicy,
    Rounding,
    Score,
    validate,
)
from domain.trajectory import parse_trajectory

# --- the oracle: the all-Fraction scoring and response rule, as they were --------------------


def _old_round_total(value: Fraction, rounding: Rounding) -> Fraction:
    if rounding == "half_up":
        return Fraction(math.floor(value + Fraction(1, 2)))
    if rounding == "floor":
        return Fraction(math.floor(value))
    return value


def _old_score(instrument: Instrument, items: Sequence[int | None] | None, total: int | None,
               *, missing_policy: MissingPolicy = "prorate_le2",
               rounding: Rounding = "none") -> Score:
    validate(instrument, items, total)
    flags: list[str] = []
    if total is not None and total > instrument.total_max:
        flags.append(TOTAL_ABOVE_MAX)
    if items is None:
        exact = Fraction(total) if total is not None and total <= instrument.total_max else None
        if exact is None:
            flags.append(UNSCORABLE)
        return Score(exact, exact, None, total, tuple(flags))
    summed = list(items[: instrument.item_count])
    answered = [v for v in summed if v is not None]
    missing = len(summed) - len(answered)
    if instrument.safety_item is not None:
        answer = summed[instrument.safety_item - 1]
        if answer is None:
            flags.append(instruments.SAFETY_ITEM9_UNANSWERED)
        elif answer >= 1:
            flags.append(instruments.SAFETY_ITEM9_POSITIVE)
    if missing > instrument.missing_allowed(missing_policy):
        flags.append(UNSCORABLE)
        return Score(None, None, len(answered), total, tuple(flags))
    exact = Fraction(sum(v for v in answered if v is not None) * len(summed), len(answered))
    if missing:
        flags.append(PRORATED)
    if total is not None and Fraction(total) != exact:
        flags.append(TOTAL_MISMATCH)
    return Score(_old_round_total(exact, rounding), exact, len(answered), total, tuple(flags))


def _old_response(self: longitudinal.LongitudinalStaging, point: timeline.Point) -> None:
    if self.responded:
        return
    baseline, value = self.baseline.value, point.value
    fraction = Fraction(self.params["response_min_fraction"])
    if baseline - value < fraction * baseline:
        return
    self.responded = True
    drop = round(100 * (baseline - value) / baseline)
    self._emit(longitudinal.RESPONSE, point, "response (G6)",
               f"{self.instrument} fell from {instruments.format_points(baseline)} to "
               f"{instruments.format_points(value)} ({drop}% ≥ {round(100 * fraction)}%) on "
               f"{point.on}: response",
               {"assessments": [self.baseline.evidence(), point.evidence()]})


def _old_score_of_code(code: str, items: Sequence[int | None] | None, total: int | None,
                       *, missing_policy: MissingPolicy, rounding: Rounding) -> Score:
    """``_old_score`` in the place of ``timeline.score_memoised`` (nothing remembered)."""
    return _old_score(instruments.get_instrument(code), items, total,
                      missing_policy=missing_policy, rounding=rounding)


@contextmanager
def fraction_fold() -> Iterator[None]:
    """Inside: the fold scores in Fractions and tests response in Fractions (the oracle)."""
    with mock.patch.object(timeline, "score_memoised", _old_score_of_code), \
            mock.patch.object(longitudinal.LongitudinalStaging, "_response", _old_response):
        yield


def snapshot(result: FoldResult) -> str:
    """Everything a fold concludes, as canonical JSON (scores exact: "9" or "9/2")."""
    return json.dumps({
        "events": [e.as_dict() for e in result.events],
        "outcome": result.outcome,
        "scores": {k: [str(s.value), str(s.exact), s.answered, s.reported_total, s.flags]
                   for k, s in sorted(result.scores.items())},
    }, sort_keys=True, default=str)


def assert_same_fold(observations: Sequence[Observation], criteria: CriteriaSet,
                     instrument: str, discharge: date | None = None) -> FoldResult:
    new = fold(observations, criteria, instrument=instrument, discharge=discharge)
    with fraction_fold():
        old = fold(observations, criteria, instrument=instrument, discharge=discharge)
    assert snapshot(new) == snapshot(old)
    assert new.events == old.events and new.outcome == old.outcome
    for score in new.scores.values():  # whole values are ints, only remainders are Fractions
        for value in (score.value, score.exact):
            assert value is None or type(value) is int or value.denominator > 1
    return new


# --- every public vector -----------------------------------------------------------------


def _vector_cases() -> list[Any]:
    cases = []
    for vec in VECTORS:
        keys = set(vec.get("expected", {})) | set(vec.get("expected_before", {}))
        rows = vec["assessments"] + vec.get("backdated_insert", [])
        for key in sorted(keys):
            cases.append(pytest.param(vec, key, rows, id=f"{vec['id']}:{key}"))
            cases.append(pytest.param(vec, key, vec["assessments"], id=f"{vec['id']}:{key}:before"))
    return cases


@pytest.mark.parametrize(("vec", "key", "rows"), _vector_cases())
def test_every_vector_folds_exactly_as_in_fractions(vec, key, rows):
    doc = {"instrument": vec.get("instrument", "PHQ-9"), "assessments": rows,
           "discharge": vec.get("discharge")}
    trajectory = parse_trajectory(doc)
    assert_same_fold(trajectory.observations, get_criteria(key), trajectory.instrument,
                     trajectory.discharge)


def test_the_vectors_cover_every_kind_of_set():
    assert {get_criteria(p.values[1]).kind for p in _vector_cases()} == {
        "frank", "acnp", "nhstt", "cms159"}


# --- generated trajectories under every built-in set and its scoring variants -----------

# Zones per instrument (points): below remission / partial / episode, so that runs form.
ZONES = {"PHQ-9": (0, 5, 10, 27), "GAD-7": (0, 5, 8, 21), "HAM-D17": (0, 8, 16, 52),
         "QIDS-SR16": (0, 6, 11, 27)}
ITEMS = {"PHQ-9": 9, "GAD-7": 7}
POOLS = ((0, 0, 0, 0, 1, 1, None), (0, 1, 1, 1, 2, 2, None), (1, 2, 2, 3, 3, 3, None))
START = date(2025, 1, 6)


@st.composite
def answer(draw: st.DrawFn, instrument: str, zone: int) -> tuple[int | None, tuple[Any, ...] | None]:
    """A total in the zone, or items (None = missing; some rows a 10th/8th extra answer, some
    with a reported total, matching or not)."""
    low, high = ZONES[instrument][zone], ZONES[instrument][zone + 1] - (zone < 2)
    if instrument not in ITEMS or draw(st.integers(0, 2)) == 0:
        return draw(st.integers(low, high)), None
    items = [draw(st.sampled_from(POOLS[zone])) for _ in range(ITEMS[instrument])]
    if draw(st.booleans()):
        items.append(draw(st.integers(0, 3)))
    total = draw(st.one_of(st.none(), st.integers(0, ZONES[instrument][3])))
    return total, tuple(items)


@st.composite
def course(draw: st.DrawFn, instrument: str, others: Sequence[str]) -> list[Observation]:
    """1-30 assessments of ``instrument`` (a syndromal baseline two times in three) in zone
    segments, 0-40 days apart (0: a second administration that day), some rows of ``others``."""
    zones = [draw(st.sampled_from([2, 2, 0, 1, 2]))]
    for zone, length in draw(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 8)),
                                      max_size=6)):
        zones += [zone] * length
    rows, on = [], START
    for index, zone in enumerate(zones[:30]):
        on += timedelta(days=draw(st.sampled_from([0, 3, 7, 7, 14, 14, 21, 28, 40])) if index
                        else 0)
        code = draw(st.sampled_from([instrument] * 3 + list(others)))
        total, items = draw(answer(code, zone))
        at = datetime(on.year, on.month, on.day, 9 + draw(st.integers(0, 3)), tzinfo=UTC)
        rows.append(Observation(f"a{index:02d}", code, on, items=items, total=total,
                                recorded_at=at, administered_at=draw(st.sampled_from([None, at]))))
    return rows


VARIANTS = st.fixed_dictionaries({}, optional={
    "rounding": st.sampled_from(["none", "half_up", "floor"]),
    "missing_policy": st.sampled_from(["prorate_le2", "prorate_le1", "complete_only"]),
})
RESPONSE = st.sampled_from(["1/2", "1/3", "2/3", "3/5", "1"])


@st.composite
def case(draw: st.DrawFn, set_id: str) -> tuple[CriteriaSet, str, list[Observation], date | None]:
    base = BUILTIN[set_id]
    overrides: dict[str, Any] = dict(draw(VARIANTS))
    if base.longitudinal and draw(st.booleans()):
        overrides["response_min_fraction"] = draw(RESPONSE)
    criteria = base.with_params(overrides)
    if base.kind == "nhstt":
        instrument, others = "PHQ-9", ["GAD-7", "GAD-7"]
    elif base.kind == "cms159" or base.params.get("minimal_status") == "symptom":
        instrument, others = "PHQ-9", ["GAD-7"]
    else:
        instrument = draw(st.sampled_from(["PHQ-9", "PHQ-9", "HAM-D17", "QIDS-SR16"]))
        others = ["GAD-7", "PHQ-9"]
    rows = draw(course(instrument, others))
    discharge = None
    if base.kind == "nhstt" and draw(st.booleans()):
        discharge = max(r.on for r in rows) - timedelta(days=draw(st.integers(0, 30)))
    return criteria, instrument, rows, discharge


@pytest.mark.parametrize("set_id", sorted(BUILTIN))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_generated_trajectories_fold_exactly_as_in_fractions(set_id, data):
    criteria, instrument, rows, discharge = data.draw(case(set_id))
    assert_same_fold(rows, criteria, instrument, discharge)


# --- the integer pieces themselves ---------------------------------------------------------


@pytest.mark.parametrize(("numerator", "denominator", "expected"), [
    (18, 2, 9), (27, 9, 3), (0, 7, 0), (9 * 9, 8, Fraction(81, 8)), (10 * 9, 8, Fraction(45, 4)),
])
def test_exact_points_is_an_int_when_it_divides(numerator, denominator, expected):
    value = instruments.exact_points(numerator, denominator)
    assert value == expected and type(value) is type(expected)


def test_a_complete_phq9_and_a_total_score_as_ints_and_a_prorated_one_as_a_fraction():
    phq9 = instruments.PHQ9
    assert type(instruments.score(phq9, (1, 2, 3, 1, 2, 3, 1, 2, 0), None).value) is int
    assert type(instruments.score(phq9, None, 14).value) is int
    prorated = instruments.score(phq9, (1, 2, 3, 1, 2, 3, 1, None, 0), None)
    assert prorated.value == Fraction(117, 8) and PRORATED in prorated.flags
    assert instruments.score(phq9, (1, 2, 3, 1, 2, 3, 1, None, 0), None,
                             rounding="half_up").value == 15
    whole = instruments.score(phq9, (2, 2, 2, 2, 2, 2, 2, None, 2), None)  # 16 x 9 / 8 = 18
    assert whole.value == 18 and type(whole.value) is int


@pytest.mark.parametrize(("baseline", "current", "fraction", "responded"), [
    (18, 9, "1/2", True), (18, 10, "1/2", False), (19, 9, "1/2", True), (19, 10, "1/2", False),
    (Fraction(117, 8), Fraction(117, 16), "1/2", True), (Fraction(117, 8), 8, "1/2", False),
    (12, 8, "1/3", True), (12, 9, "1/3", False), (10, 0, "1", True), (10, 1, "1", False),
])
def test_response_cross_multiplied_agrees_with_fractions(baseline, current, fraction, responded):
    ratio = longitudinal.response_fraction(fraction)
    new = (baseline - current) * ratio.denominator >= ratio.numerator * baseline
    old = Fraction(baseline) - Fraction(current) >= Fraction(fraction) * Fraction(baseline)
    assert new == old == responded
