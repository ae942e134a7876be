"""Instruments (SPEC §1.1-1.4, §4.1-4.2, C1-C3): shapes, ranges, bands, proration, flags, LOINC."""

from __future__ import annotations

from fractions import Fraction

import pytest

from domain.errors import (
    ItemCountError,
    ItemOutOfRangeError,
    MissingScoreError,
    TotalOutOfRangeError,
    UnknownInstrumentError,
)
from domain.instruments import (
    GAD7,
    HAMD17,
    MADRS,
    PHQ9,
    PRORATED,
    QIDS_SR16,
    SAFETY_ITEM9_POSITIVE,
    SAFETY_ITEM9_UNANSWERED,
    TOTAL_ABOVE_MAX,
    TOTAL_MISMATCH,
    UNSCORABLE,
    Instrument,
    format_points,
    get_instrument,
    points,
    round_total,
    score,
    validate,
)

# V12's items (SPEC §5): 8 answered summing 8, 8 answered summing 4, 7 answered summing 3.
NINE_POINT_ZERO = [2, 2, 1, 1, None, 1, 1, 0, 0]
FOUR_POINT_FIVE = [1, 1, None, 1, 0, 1, 0, 0, 0]
TWENTY_SEVEN_SEVENTHS = [1, 1, 0, None, 0, 1, None, 0, 0]


def with_missing(instrument: Instrument, missing: int) -> list[int | None]:
    """All items answered 1, the first ``missing`` of them left blank."""
    return [None] * missing + [1] * (instrument.item_count - missing)


# --- item counts and shapes ------------------------------------------------------------------


def test_phq9_sums_nine_items_and_stores_a_tenth():
    assert (PHQ9.item_count, PHQ9.extra_items, PHQ9.total_max) == (9, 1, 27)


def test_gad7_sums_seven_items_and_stores_the_difficulty_question_as_an_eighth():
    assert (GAD7.item_count, GAD7.extra_items, GAD7.total_max) == (7, 1, 21)


@pytest.mark.parametrize(("instrument", "count"), [
    (PHQ9, 8), (PHQ9, 11), (PHQ9, 0), (GAD7, 6), (GAD7, 9),
])
def test_a_wrong_number_of_items_is_rejected(instrument, count):
    with pytest.raises(ItemCountError) as caught:
        validate(instrument, [0] * count, None)
    assert caught.value.field == "items"


@pytest.mark.parametrize(("instrument", "count"), [(PHQ9, 9), (PHQ9, 10), (GAD7, 7), (GAD7, 8)])
def test_the_published_number_of_items_is_accepted(instrument, count):
    validate(instrument, [0] * count, None)


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, 4, -1, "2"])
def test_an_item_outside_zero_to_three_is_rejected_naming_the_item(bad):
    items: list = [0, 1, 2, bad, 0, 0, 0, 0, 0]
    with pytest.raises(ItemOutOfRangeError) as caught:
        validate(PHQ9, items, None)
    assert caught.value.field == "items[3]"
    assert caught.value.code == "item-out-of-range"


def test_phq9_item_10_is_range_checked_too():
    with pytest.raises(ItemOutOfRangeError) as caught:
        validate(PHQ9, [0] * 9 + [4], None)
    assert caught.value.field == "items[9]"


def test_a_gad7_item_of_4_is_rejected():
    with pytest.raises(ItemOutOfRangeError) as caught:
        score(GAD7, [0, 0, 0, 0, 0, 0, 4], None)
    assert caught.value.field == "items[6]"


def test_an_assessment_without_items_or_total_is_rejected():
    with pytest.raises(MissingScoreError):
        validate(PHQ9, None, None)


@pytest.mark.parametrize("bad", [-1, True, 4.0, "12"])
def test_a_reported_total_must_be_a_whole_number_of_points(bad):
    with pytest.raises(TotalOutOfRangeError) as caught:
        validate(PHQ9, None, bad)
    assert caught.value.field == "total"


@pytest.mark.parametrize(("instrument", "too_high"), [(PHQ9, 28), (GAD7, 22)])
def test_a_total_only_phq9_or_gad7_above_its_maximum_is_rejected(instrument, too_high):
    validate(instrument, None, instrument.total_max)
    with pytest.raises(TotalOutOfRangeError):
        validate(instrument, None, too_high)


def test_phq9_item_10_is_stored_but_never_summed():
    result = score(PHQ9, [1] * 9 + [3], None)
    assert result.value == 9
    assert result.answered == 9


# --- severity bands (lower bounds inclusive) -------------------------------------------------


@pytest.mark.parametrize(("instrument", "total", "band"), [
    (PHQ9, 0, "minimal"),
    (PHQ9, 4, "minimal"),
    (PHQ9, Fraction(9, 2), "minimal"),
    (PHQ9, 5, "mild"),
    (PHQ9, 9, "mild"),
    (PHQ9, 10, "moderate"),
    (PHQ9, Fraction(117, 8), "moderate"),  # 14.625, the other prorated value just below a cut
    (PHQ9, 15, "moderately severe"),
    (PHQ9, 19, "moderately severe"),
    (PHQ9, 20, "severe"),
    (PHQ9, 27, "severe"),
    (GAD7, 4, "minimal"),
    (GAD7, 5, "mild"),
    (GAD7, 10, "moderate"),
    (GAD7, 14, "moderate"),
    (GAD7, 15, "severe"),
    (GAD7, 21, "severe"),
    (QIDS_SR16, 5, "none"),
    (QIDS_SR16, 6, "mild"),
    (QIDS_SR16, 21, "very severe"),
])
def test_severity_band_starts_at_its_lower_bound(instrument, total, band):
    assert instrument.severity(Fraction(total)) == band


def test_no_band_without_a_score_or_without_published_bands():
    assert PHQ9.severity(None) is None
    assert MADRS.severity(Fraction(30)) is None
    assert HAMD17.severity(Fraction(30)) is None


# --- missing items and proration (SPEC §1.4, C2) --------------------------------------------


@pytest.mark.parametrize(("instrument", "missing", "policy", "scorable"), [
    (PHQ9, 0, "complete_only", True),
    (PHQ9, 1, "complete_only", False),
    (PHQ9, 1, "prorate_le1", True),
    (PHQ9, 2, "prorate_le1", False),
    (PHQ9, 2, "prorate_le2", True),
    (PHQ9, 3, "prorate_le2", False),
    (GAD7, 0, "complete_only", True),
    (GAD7, 1, "complete_only", False),
    (GAD7, 1, "prorate_le1", True),
    (GAD7, 2, "prorate_le1", False),
    (GAD7, 1, "prorate_le2", True),   # C2: the default allows 1 of 7 for GAD-7 ...
    (GAD7, 2, "prorate_le2", False),  # ... not 2
])
def test_missing_item_policy_decides_whether_an_assessment_is_scored(
        instrument, missing, policy, scorable):
    result = score(instrument, with_missing(instrument, missing), None, missing_policy=policy)
    assert result.scorable is scorable
    assert (UNSCORABLE in result.flags) is not scorable
    if scorable:
        # all answered items are 1, so the prorated total is the item count exactly
        assert result.value == instrument.item_count


@pytest.mark.parametrize(("items", "expected"), [
    (NINE_POINT_ZERO, Fraction(9)),
    (FOUR_POINT_FIVE, Fraction(9, 2)),
    (TWENTY_SEVEN_SEVENTHS, Fraction(27, 7)),
])
def test_prorated_phq9_total_is_answered_sum_times_nine_over_answered(items, expected):
    result = score(PHQ9, items, None)
    assert result.value == expected
    assert result.exact == expected
    assert PRORATED in result.flags


def test_prorated_gad7_total_is_answered_sum_times_seven_over_answered():
    result = score(GAD7, [3, None, 2, 2, 1, 1, 1], None)
    assert result.value == Fraction(35, 3)
    assert result.answered == 6


def test_a_complete_form_is_not_flagged_as_prorated():
    assert PRORATED not in score(PHQ9, [1] * 9, None).flags


@pytest.mark.parametrize(("items", "rounding", "value"), [
    (FOUR_POINT_FIVE, "none", Fraction(9, 2)),
    (FOUR_POINT_FIVE, "half_up", Fraction(5)),
    (FOUR_POINT_FIVE, "floor", Fraction(4)),
    (TWENTY_SEVEN_SEVENTHS, "none", Fraction(27, 7)),
    (TWENTY_SEVEN_SEVENTHS, "half_up", Fraction(4)),
    (TWENTY_SEVEN_SEVENTHS, "floor", Fraction(3)),
])
def test_rounding_applies_to_the_staged_value_and_keeps_the_exact_one(items, rounding, value):
    result = score(PHQ9, items, None, rounding=rounding)
    assert result.value == value
    assert result.exact == score(PHQ9, items, None).value


@pytest.mark.parametrize(("value", "half_up", "floor"), [
    (Fraction(117, 8), 15, 14),
    (Fraction(7), 7, 7),
    (Fraction(1, 2), 1, 0),
])
def test_round_total(value, half_up, floor):
    assert round_total(value, "none") == value
    assert round_total(value, "half_up") == half_up
    assert round_total(value, "floor") == floor


def test_an_unscorable_assessment_has_no_value_never_zero():
    result = score(PHQ9, [1, 0, None, None, None, 0, 0, 0, 0], None)
    assert result.value is None
    assert result.exact is None
    assert not result.scorable
    assert UNSCORABLE in result.flags
    assert result.answered == 6


@pytest.mark.parametrize(("items", "total"), [(None, 0), ([0] * 9, None), ([0] * 9, 0)])
def test_a_total_of_zero_is_scorable(items, total):
    result = score(PHQ9, items, total)
    assert result.scorable
    assert result.value == 0
    assert UNSCORABLE not in result.flags


# --- reported total against items (C1) -------------------------------------------------------


def test_items_win_over_a_reported_total_above_the_maximum_which_is_kept_and_flagged():
    result = score(PHQ9, [2, 2, 2, 2, 2, 2, 0, 0, 0], 34)
    assert result.value == 12
    assert result.reported_total == 34
    assert TOTAL_MISMATCH in result.flags
    assert TOTAL_ABOVE_MAX in result.flags


def test_a_reported_total_that_disagrees_with_the_items_is_flagged_not_used():
    result = score(PHQ9, [2, 2, 2, 2, 2, 2, 0, 0, 0], 13)
    assert result.value == 12
    assert result.reported_total == 13
    assert TOTAL_MISMATCH in result.flags
    assert TOTAL_ABOVE_MAX not in result.flags


def test_a_reported_total_that_agrees_with_the_items_raises_no_flag():
    assert score(PHQ9, [2, 2, 2, 2, 2, 2, 0, 0, 0], 12).flags == ()


def test_a_reported_total_is_ignored_even_when_the_items_are_unscorable():
    result = score(PHQ9, [1, 0, None, None, None, 0, 0, 0, 0], 10)
    assert result.value is None
    assert result.reported_total == 10


def test_a_total_only_assessment_is_scored_at_its_reported_total():
    result = score(PHQ9, None, 14)
    assert result.value == 14
    assert result.answered is None
    assert result.flags == ()


# --- total-only instruments (C12) ------------------------------------------------------------


@pytest.mark.parametrize(("instrument", "code", "maximum"), [
    (HAMD17, "HAM-D17", 52), (MADRS, "MADRS", 60), (QIDS_SR16, "QIDS-SR16", 27),
])
def test_total_only_instrument_accepts_zero_to_its_maximum(instrument, code, maximum):
    assert get_instrument(code) is instrument
    assert instrument.total_only
    assert instrument.total_max == maximum
    assert score(instrument, None, 0).value == 0
    assert score(instrument, None, maximum).value == maximum


@pytest.mark.parametrize("instrument", [HAMD17, MADRS, QIDS_SR16])
def test_total_only_instrument_rejects_a_total_above_its_maximum(instrument):
    with pytest.raises(TotalOutOfRangeError) as caught:
        score(instrument, None, instrument.total_max + 1)
    assert caught.value.field == "total"


@pytest.mark.parametrize("instrument", [HAMD17, MADRS, QIDS_SR16])
def test_total_only_instrument_rejects_a_negative_total(instrument):
    with pytest.raises(TotalOutOfRangeError):
        score(instrument, None, -1)


@pytest.mark.parametrize("instrument", [HAMD17, MADRS, QIDS_SR16])
def test_total_only_instrument_rejects_item_scores(instrument):
    with pytest.raises(ItemCountError) as caught:
        score(instrument, [1] * 17, 17)
    assert caught.value.field == "items"


def test_an_unknown_instrument_is_rejected():
    with pytest.raises(UnknownInstrumentError) as caught:
        get_instrument("BDI-II")
    assert caught.value.field == "instrument"


# --- safety flags (SPEC §1.1, C4) ------------------------------------------------------------


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_any_positive_item_9_is_flagged_whatever_the_total(item9):
    result = score(PHQ9, [0] * 8 + [item9], None)
    assert result.value == item9  # a minimal total does not hide the safety flag
    assert SAFETY_ITEM9_POSITIVE in result.flags
    assert SAFETY_ITEM9_UNANSWERED not in result.flags


def test_item_9_answered_zero_raises_no_safety_flag():
    result = score(PHQ9, [3] * 8 + [0], None)
    assert SAFETY_ITEM9_POSITIVE not in result.flags
    assert SAFETY_ITEM9_UNANSWERED not in result.flags


def test_unanswered_item_9_is_flagged_and_never_imputed_though_the_total_is_prorated():
    result = score(PHQ9, [1] * 8 + [None], None)
    assert SAFETY_ITEM9_UNANSWERED in result.flags
    assert SAFETY_ITEM9_POSITIVE not in result.flags
    assert result.value == 9


def test_positive_item_9_is_flagged_even_when_the_assessment_is_unscorable():
    result = score(PHQ9, [None, None, None, 0, 0, 0, 0, 0, 2], None)
    assert not result.scorable
    assert SAFETY_ITEM9_POSITIVE in result.flags


def test_a_total_only_phq9_raises_no_item_9_flag():
    assert score(PHQ9, None, 20).flags == ()


def test_gad7_items_raise_no_safety_flags():
    flags = score(GAD7, [3] * 7, None).flags
    assert SAFETY_ITEM9_POSITIVE not in flags
    assert SAFETY_ITEM9_UNANSWERED not in flags


# --- LOINC (SPEC §4.1, §4.2) -----------------------------------------------------------------


def test_phq9_loinc_codes():
    assert PHQ9.loinc_panel == "44249-1"
    assert PHQ9.loinc_total == "44261-6"
    assert PHQ9.loinc_items == (
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
        "44258-2", "44252-5", "44253-3", "44260-8", "69722-7",
    )


def test_phq9_item_9_and_the_difficulty_item_have_their_own_codes():
    assert PHQ9.loinc_items[8] == "44260-8"
    assert PHQ9.loinc_items[9] == "69722-7"


def test_gad7_loinc_codes():
    assert GAD7.loinc_panel == "69737-5"
    assert GAD7.loinc_total == "70274-6"
    assert GAD7.loinc_items == (
        "69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7", "69722-7",
    )


@pytest.mark.parametrize("instrument", [PHQ9, GAD7])
def test_one_loinc_code_per_stored_item(instrument):
    assert len(instrument.loinc_items) == instrument.item_count + instrument.extra_items
    assert len(set(instrument.loinc_items)) == len(instrument.loinc_items)


# --- format_points ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (None, None),
    (Fraction(0), "0"),
    (Fraction(8), "8"),
    (Fraction(9, 2), "4.5"),
    (Fraction(27, 7), "3.857"),
    (Fraction(35, 3), "11.667"),
    (Fraction(117, 8), "14.625"),
    (Fraction(-9, 2), "-4.5"),
    (Fraction(-6), "-6"),
])
def test_format_points_gives_at_most_three_decimals(value, text):
    assert format_points(value) == text


@pytest.mark.parametrize(("value", "number"), [
    (None, None),
    (Fraction(0), 0),
    (Fraction(8), 8),
    (Fraction(9, 2), 4.5),
    (Fraction(27, 7), 3.857),
    (Fraction(-9, 2), -4.5),
])
def test_points_gives_a_json_number_int_when_whole(value, number):
    assert points(value) == number
    assert type(points(value)) is type(number)
