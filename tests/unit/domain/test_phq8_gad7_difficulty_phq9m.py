"""PHQ-8 (SPEC §1.2b), the GAD-7 difficulty question (§1.2) and the PHQ-9M in CMS159 (§1.2b, C9).

Expected values are worked out by hand from the SPEC: a PHQ-8 is 8 items 0-3, total 0-24, bands
at 5/10/15/20 and no item 9; a GAD-7 may carry an 8th answer (difficulty, LOINC 69722-7) that is
stored and never summed; CMS159 takes "PHQ-9 and PHQ-9M" (the product's PHQ-A) for the index and
the follow-up, while the adult longitudinal sets never fold a PHQ-A.
"""

from __future__ import annotations

from datetime import date

import pytest

from domain.criteria.builtin import BUILTIN
from domain.criteria.fold import Observation, fold
from domain.errors import (
    ItemCountError,
    ItemOutOfRangeError,
    TotalOutOfRangeError,
    UnstageableInstrumentError,
)
from domain.instruments import (
    GAD7,
    PHQ8,
    PHQ9,
    PRORATED,
    SAFETY_ITEM9_POSITIVE,
    SAFETY_ITEM9_UNANSWERED,
    get_instrument,
    score,
    validate,
)

# --- PHQ-8: an instrument of its own ---------------------------------------------------------


def test_phq8_is_its_own_instrument_of_eight_items_totalling_0_to_24():
    assert get_instrument("PHQ-8") is PHQ8
    assert (PHQ8.item_count, PHQ8.extra_items, PHQ8.total_max) == (8, 0, 24)
    assert PHQ8.loinc_items == PHQ9.loinc_items[:8]  # the PHQ-9 item codes, without 44260-8


def test_a_complete_phq8_is_summed_never_prorated_to_nine_items():
    result = score(PHQ8, [3, 3, 3, 3, 3, 3, 3, 3], None)
    assert (result.value, result.flags) == (24, ())


def test_a_phq8_raises_no_item_9_flag():
    flags = score(PHQ8, [1, 1, 1, 1, 1, 1, 1, 1], None).flags
    assert SAFETY_ITEM9_UNANSWERED not in flags and SAFETY_ITEM9_POSITIVE not in flags


@pytest.mark.parametrize(("total", "band"), [
    (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (15, "moderately severe"),
    (20, "severe"), (24, "severe")])
def test_phq8_uses_the_phq9_cut_points(total, band):
    assert PHQ8.severity(score(PHQ8, None, total).value) == band


@pytest.mark.parametrize("count", [7, 9, 10])
def test_a_phq8_takes_exactly_eight_items(count):
    with pytest.raises(ItemCountError):
        validate(PHQ8, [0] * count, None)


def test_a_phq8_total_above_24_is_rejected():
    with pytest.raises(TotalOutOfRangeError):
        validate(PHQ8, None, 25)


def test_a_phq8_with_one_missing_item_is_prorated_over_its_own_eight_items():
    # 7 answered items summing 7: 7 x 8 / 7 = 8 (never 7 x 9 / 7 = 9).
    result = score(PHQ8, [1, 1, 1, None, 1, 1, 1, 1], None)
    assert (result.value, PRORATED in result.flags) == (8, True)


def test_a_phq8_is_not_staged_by_the_phq9_series():
    # Baseline PHQ-9 16; a PHQ-8 of 4 on 01-19 would be a response if it counted as a PHQ-9.
    rows = [Observation("b", "PHQ-9", date(2026, 1, 5), total=16),
            Observation("p8", "PHQ-8", date(2026, 1, 19), items=(1, 1, 1, 1, 0, 0, 0, 0))]
    result = fold(rows, BUILTIN["frank1991"])
    assert result.events == ()
    assert result.scores["p8"].value == 4


def test_a_longitudinal_set_without_phq8_thresholds_cannot_stage_it():
    with pytest.raises(UnstageableInstrumentError):
        fold([], BUILTIN["frank1991"], instrument="PHQ-8")


def test_a_set_that_names_phq8_thresholds_stages_a_phq8_series():
    # SPEC §1.2b: "not staged by the PHQ-9 series unless a criteria set names it". With PHQ-9's
    # zones for PHQ-8: baseline 16, 01-19 = 4 -> response (2 x 12 >= 16).
    criteria = BUILTIN["frank1991"].with_params(
        {"thresholds.PHQ-8.remission_below": 5, "thresholds.PHQ-8.episode_from": 10})
    rows = [Observation("a", "PHQ-8", date(2026, 1, 5), total=16),
            Observation("b", "PHQ-8", date(2026, 1, 19), total=4)]
    events = fold(rows, criteria, instrument="PHQ-8").events
    assert [(e.type, e.assessment_id) for e in events] == [("ResponseReached", "b")]


def test_nhs_talking_therapies_ignores_a_phq8():
    rows = [Observation("a", "PHQ-9", date(2026, 1, 5), total=15),
            Observation("b", "PHQ-8", date(2026, 1, 19), total=3),
            Observation("c", "PHQ-9", date(2026, 2, 2), total=14)]
    outcome = fold(rows, BUILTIN["nhs-talking-therapies-2024"]).outcome
    assert outcome is not None
    assert outcome["measures"]["PHQ-9"]["last"]["assessment_id"] == "c"
    assert outcome["reliable_improvement"] is False  # 15 -> 14, the PHQ-8's 3 is not a PHQ-9


# --- GAD-7 with its difficulty question --------------------------------------------------------


def test_gad7_accepts_seven_or_eight_answers():
    validate(GAD7, [0] * 7, None)
    validate(GAD7, [0] * 8, None)
    for count in (6, 9):
        with pytest.raises(ItemCountError):
            validate(GAD7, [0] * count, None)


def test_the_gad7_difficulty_answer_is_stored_but_never_summed():
    result = score(GAD7, [1, 1, 1, 1, 1, 1, 1, 3], None)
    assert (result.value, result.answered, result.flags) == (7, 7, ())
    assert GAD7.severity(result.value) == "mild"


def test_a_missing_difficulty_answer_is_not_a_missing_gad7_item():
    result = score(GAD7, [2, 2, 2, 2, 2, 2, 2, None], None, missing_policy="complete_only")
    assert (result.value, result.flags) == (14, ())


def test_the_gad7_difficulty_item_is_loinc_69722_7():
    assert GAD7.loinc_items[7] == "69722-7"
    assert (GAD7.item_count, GAD7.extra_items) == (7, 1)


def test_a_gad7_difficulty_answer_is_range_checked():
    with pytest.raises(ItemOutOfRangeError) as caught:
        validate(GAD7, [0, 0, 0, 0, 0, 0, 0, 4], None)
    assert caught.value.field == "items[7]"


# --- CMS159 counts the PHQ-9M (PHQ-A) ----------------------------------------------------------

# V17's series with PHQ-A rows: index 2026-01-05 16; window 2026-11-06 ... 2027-03-06; last in
# window 2027-02-22 = 3 < 5 -> met.
def v17(index: str, follow_up: str) -> list[Observation]:
    return [Observation("i", index, date(2026, 1, 5), total=16),
            Observation("f1", "PHQ-9", date(2026, 6, 1), total=6),
            Observation("f2", "PHQ-9", date(2026, 12, 14), total=7),
            Observation("f3", follow_up, date(2027, 2, 22), total=3)]


@pytest.mark.parametrize(("index", "follow_up"), [
    ("PHQ-A", "PHQ-9"), ("PHQ-9", "PHQ-A"), ("PHQ-A", "PHQ-A")])
def test_cms159_counts_a_phq9m_as_index_and_as_follow_up(index, follow_up):
    outcome = fold(v17(index, follow_up), BUILTIN["cms159"]).outcome
    assert outcome is not None
    assert (outcome["met"], outcome["index"]["assessment_id"],
            outcome["measure_assessment"]["assessment_id"]) == (True, "i", "f3")


def test_a_later_phq9m_of_7_in_the_window_means_not_met():
    # V17b with the last in-window score a PHQ-A of 7: the last score is >= 5 -> not met.
    rows = [*v17("PHQ-9", "PHQ-9"), Observation("f4", "PHQ-A", date(2027, 3, 1), total=7)]
    outcome = fold(rows, BUILTIN["cms159"]).outcome
    assert outcome is not None
    assert (outcome["met"], outcome["measure_assessment"]["assessment_id"]) == (False, "f4")


def test_a_phq9m_stays_out_of_the_adult_longitudinal_series():
    rows = [Observation("b", "PHQ-9", date(2026, 1, 5), total=16),
            Observation("teen", "PHQ-A", date(2026, 1, 19), total=4)]
    assert fold(rows, BUILTIN["acnp2006"]).events == ()
