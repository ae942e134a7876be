"""Cut-point packs on hand-derived trajectories: schueller2015-phq9 (PHQ-9 >= 17 / 13 / 9 at weeks
4 / 9 / 14, windows of +-7 days) and stard-qids (QIDS-SR16 >= 9 at weeks 4, 6, 9, 12, +-3 days)."""

from __future__ import annotations

import pytest
from signals_helpers import OPENED, point, trajectory

from domain.signals.evaluate import (
    applies,
    current_signal,
    decision_point_choice,
    in_decision_window,
    safety_positive,
)
from domain.signals.packs import get_rule_pack

SCHUELLER = get_rule_pack("schueller2015-phq9")
STARD = get_rule_pack("stard-qids")
SCHUELLER_DECISIONS = [(4, 17), (9, 13), (14, 9)]
STARD_DECISIONS = [(4, 9), (6, 9), (9, 9), (12, 9)]


def signal(pack, points):
    return current_signal(pack, points, opened_on=OPENED)


@pytest.mark.parametrize(("week", "threshold"), SCHUELLER_DECISIONS)
def test_schueller_is_not_on_track_from_the_threshold_and_on_track_one_point_below(week, threshold):
    at = signal(SCHUELLER, trajectory((0, 22), (7 * week, threshold)))
    below = signal(SCHUELLER, trajectory((0, 22), (7 * week, threshold - 1)))
    assert (at.status, at.decision_point, at.evidence) == (
        "not_on_track", f"week {week}", {"score": threshold, "threshold": threshold})
    assert (below.status, below.decision_point, below.evidence) == (
        "on_track", f"week {week}", {"score": threshold - 1, "threshold": threshold})
    assert (at.assessment_id, at.clinical_date, at.week) == (
        f"d{7 * week}", point(7 * week, 0).on, float(week))
    assert at.rule == SCHUELLER.ref()


@pytest.mark.parametrize(("week", "threshold"), SCHUELLER_DECISIONS)
@pytest.mark.parametrize("offset", [-7, 7])
def test_schueller_window_edges_seven_days_either_side_count(week, threshold, offset):
    day = 7 * week + offset
    s = signal(SCHUELLER, trajectory((0, 22), (day, threshold)))
    assert (s.decision_point, s.status, s.assessment_id, s.week) == (
        f"week {week}", "not_on_track", f"d{day}", round(day / 7, 1))


@pytest.mark.parametrize("week", [4, 9, 14])
@pytest.mark.parametrize("offset", [-8, 8])
def test_schueller_a_point_just_outside_every_window_decides_nothing(week, offset):
    assert signal(SCHUELLER, trajectory((0, 22), (7 * week + offset, 27))) is None


def test_the_point_closest_to_the_decision_day_decides():
    # day 27 is 1 day from day 28, day 34 six days: day 27 (18 >= 17) decides
    s = signal(SCHUELLER, trajectory((0, 22), (27, 18), (34, 10)))
    assert (s.status, s.assessment_id, s.evidence["score"]) == ("not_on_track", "d27", 18)


def test_a_tie_between_two_points_as_close_goes_to_the_later():
    s = signal(SCHUELLER, trajectory((0, 22), (25, 18), (31, 10)))
    assert (s.status, s.assessment_id, s.evidence["score"]) == ("on_track", "d31", 10)
    s = signal(SCHUELLER, trajectory((0, 22), (25, 10), (31, 18)))
    assert (s.status, s.assessment_id) == ("not_on_track", "d31")


def test_nothing_before_day_21_even_inside_a_wide_window():
    wide = SCHUELLER.with_params({"tolerance_days": 10})  # week 4 window: days 18..38
    assert signal(wide, trajectory((0, 22), (18, 25), (20, 25))) is None
    s = signal(wide, trajectory((0, 22), (20, 25), (21, 25)))
    assert (s.status, s.assessment_id, s.week) == ("not_on_track", "d21", 3.0)


def test_no_signal_before_the_first_window_and_none_for_no_points():
    assert signal(SCHUELLER, trajectory((0, 22), (7, 20), (14, 19))) is None
    assert signal(SCHUELLER, []) is None


def test_the_status_holds_between_decision_points_and_clears_at_the_next():
    history = [(0, 22), (28, 18), (42, 16), (49, 15)]
    held = signal(SCHUELLER, trajectory(*history))
    assert (held.status, held.decision_point, held.assessment_id) == (
        "not_on_track", "week 4", "d28")
    cleared = signal(SCHUELLER, trajectory(*history, (63, 12)))
    assert (cleared.status, cleared.decision_point, cleared.assessment_id) == (
        "on_track", "week 9", "d63")
    again = signal(SCHUELLER, trajectory(*history, (63, 12), (98, 9)))
    assert (again.status, again.decision_point, again.evidence) == (
        "not_on_track", "week 14", {"score": 9, "threshold": 9})


def test_a_later_point_of_the_same_window_that_is_farther_from_the_day_changes_nothing():
    s = signal(SCHUELLER, trajectory((0, 22), (28, 18), (33, 10)))
    assert (s.status, s.assessment_id) == ("not_on_track", "d28")


def test_a_prorated_score_is_compared_exactly():
    # 8 of 9 items answered summing to 15: 15 * 9 / 8 = 16.875 < 17
    prorated = point(28, None, items=(2, 2, 2, 2, 2, 2, 2, 1, None, 0))
    s = signal(SCHUELLER, [point(0, 22), prorated])
    assert (s.status, s.evidence["score"]) == ("on_track", 16.875)
    assert s.explanation == ("PHQ-9 16.875 at week 4 is below 17, the week-4 cut-off for not on "
                             "track (schueller2015-phq9 v1.0.0)")


def test_schueller_explanations():
    off = signal(SCHUELLER, trajectory((0, 22), (30, 17)))
    on = signal(SCHUELLER, trajectory((0, 22), (63, 12)))
    assert off.explanation == ("PHQ-9 17 at week 4.3 is at or above 17, the week-4 cut-off for not "
                               "on track (schueller2015-phq9 v1.0.0)")
    assert on.explanation == ("PHQ-9 12 at week 9 is below 13, the week-9 cut-off for not on "
                              "track (schueller2015-phq9 v1.0.0)")


@pytest.mark.parametrize(("score", "category", "status"), [
    (5, "remission", "on_track"), (6, "partial response", "on_track"),
    (8, "partial response", "on_track"), (9, "non-response", "not_on_track"),
])
@pytest.mark.parametrize(("week", "threshold"), STARD_DECISIONS)
def test_stard_bands_at_each_decision_point(week, threshold, score, category, status):
    s = signal(STARD, trajectory((0, 18), (7 * week, score), instrument="QIDS-SR16"))
    assert (s.decision_point, s.status, s.evidence) == (
        f"week {week}", status, {"score": score, "threshold": threshold, "category": category})


@pytest.mark.parametrize("week", [4, 6, 9, 12])
def test_stard_windows_are_three_days_either_side(week):
    for offset in (-3, 3):
        s = signal(STARD, trajectory((0, 18), (7 * week + offset, 9), instrument="QIDS-SR16"))
        assert (s.decision_point, s.assessment_id) == (f"week {week}", f"d{7 * week + offset}")
    for offset in (-4, 4):
        assert signal(STARD, trajectory((0, 18), (7 * week + offset, 9),
                                        instrument="QIDS-SR16")) is None


def test_stard_explanation_names_the_category():
    s = signal(STARD, trajectory((0, 18), (42, 7), instrument="QIDS-SR16"))
    assert s.explanation == ("QIDS-SR16 7 at week 6 (partial response) is below 9, the week-6 "
                             "cut-off for not on track (stard-qids v1.0.0)")
    s = signal(STARD, trajectory((0, 18), (42, 7), (64, 12), instrument="QIDS-SR16"))
    assert s.explanation == ("QIDS-SR16 12 at week 9.1 (non-response) is at or above 9, the "
                             "week-9 cut-off for not on track (stard-qids v1.0.0)")


def test_stard_clears_when_a_later_decision_point_is_back_under_the_cut():
    points = trajectory((0, 18), (28, 12), (42, 10), (63, 8), instrument="QIDS-SR16")
    assert [signal(STARD, points[:n]).status for n in (2, 3, 4)] == [
        "not_on_track", "not_on_track", "on_track"]


def test_a_variant_threshold_is_the_one_applied():
    strict = SCHUELLER.with_params({"thresholds.9": "12"})
    assert signal(strict, trajectory((0, 22), (63, 12))).status == "not_on_track"
    assert signal(SCHUELLER, trajectory((0, 22), (63, 12))).status == "on_track"
    assert signal(strict, trajectory((0, 22), (63, 12))).rule["id"] == (
        "schueller2015-phq9|thresholds.9=12")


def test_cut_point_packs_apply_to_their_own_instrument_only():
    assert applies(SCHUELLER, "PHQ-9") and not applies(SCHUELLER, "QIDS-SR16")
    assert applies(STARD, "QIDS-SR16") and not applies(STARD, "PHQ-9")
    assert signal(SCHUELLER, trajectory((0, 18), (28, 20), instrument="QIDS-SR16")) is None


def test_safety_and_overdue_packs_watch_every_episode_and_give_no_on_track_signal():
    for pack_id in ("phq9-item9", "overdue"):
        pack = get_rule_pack(pack_id)
        assert applies(pack, "PHQ-9") and applies(pack, "HAM-D17")
        assert signal(pack, trajectory((0, 22), (28, 20))) is None


@pytest.mark.parametrize(("item9", "positive"), [(0, False), (1, True), (3, True), (None, False)])
def test_the_safety_pack_reads_phq9_item_9_from_1(item9, positive):
    pack = get_rule_pack("phq9-item9")
    obs = point(3, None, items=(1, 1, 1, 1, 1, 1, 1, 1, item9, 0)).obs
    assert safety_positive(pack, obs) is positive
    assert safety_positive(pack.with_params({"positive_from": 2}), obs) is (
        item9 is not None and item9 >= 2)


def test_the_safety_pack_ignores_other_instruments_and_totals_only():
    pack = get_rule_pack("phq9-item9")
    assert not safety_positive(pack, point(3, 20).obs)
    assert not safety_positive(pack, point(3, None, "PHQ-A", items=(1,) * 9).obs)
    assert not safety_positive(get_rule_pack("overdue"), point(3, None, items=(1,) * 9).obs)


@pytest.mark.parametrize("pack_id", ["schueller2015-phq9", "stard-qids"])
def test_in_decision_window_is_exactly_the_days_a_decision_point_reads(pack_id: str) -> None:
    """The Episode skips re-evaluating a cut-point pack for a point outside every window: the
    predicate must hold for exactly the days some decision point would choose a lone point on
    (schueller: days 21-35, 56-70, 91-105; stard: 25-31, 39-45, 60-66, 81-87)."""
    pack = get_rule_pack(pack_id)
    instrument = "PHQ-9" if pack_id == "schueller2015-phq9" else "QIDS-SR16"
    weeks = [int(w) for w in pack.params["thresholds"]]
    for day in range(0, 120):
        read = any(decision_point_choice(pack, [point(day, 10, instrument)], OPENED, w)
                   is not None for w in weeks)
        assert in_decision_window(pack, day) is read, day
    assert [d for d in range(120) if in_decision_window(pack, d)][:2] == (
        [21, 22] if pack_id == "schueller2015-phq9" else [25, 26])
    assert in_decision_window(get_rule_pack("expected-recovery"), 0) is True
