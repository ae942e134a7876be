"""The episode's on-track status under the packs that watch it (domain.signals.watch, ADR
0032): the rule the caseload shows and the Episode's alerts follow, on hand-derived PHQ-9
trajectories under schueller2015-phq9 (week-4 cut-off 17, window day 21..35)."""

from __future__ import annotations

from signals_helpers import OPENED, trajectory

from domain.signals.packs import get_rule_pack
from domain.signals.watch import on_track, signal_packs


def watching(*pack_ids: str) -> dict[str, object]:
    return {"packs": [get_rule_pack(i).describe() for i in pack_ids], "curve": None}


def test_the_defaults_watch_phq9_with_schueller_and_qids_with_stard():
    assert [p.id for p in signal_packs(None, "PHQ-9")[0]] == ["schueller2015-phq9"]
    assert [p.id for p in signal_packs(None, "QIDS-SR16")[0]] == ["stard-qids"]
    assert signal_packs(None, "HAM-D17") == ([], None)


def test_a_week_4_score_under_the_cut_off_is_on_track_without_any_alert():
    assert on_track(None, "PHQ-9", trajectory((0, 20), (28, 16)), opened_on=OPENED) == "on_track"


def test_a_week_4_score_at_the_cut_off_is_not_on_track():
    assert on_track(None, "PHQ-9", trajectory((0, 20), (28, 17)),
                    opened_on=OPENED) == "not_on_track"


def test_before_the_first_decision_window_it_is_not_yet():
    assert on_track(None, "PHQ-9", trajectory((0, 20), (14, 19), (20, 18)),
                    opened_on=OPENED) == "not_yet"
    assert on_track(None, "PHQ-9", [], opened_on=OPENED) == "not_yet"


def test_expected_recovery_without_a_curve_is_insufficient_and_yields_to_a_real_signal():
    points = trajectory((0, 20), (28, 16))
    assert on_track(watching("expected-recovery"), "PHQ-9", points,
                    opened_on=OPENED) == "insufficient"
    assert on_track(watching("expected-recovery", "schueller2015-phq9"), "PHQ-9", points,
                    opened_on=OPENED) == "on_track"


def test_packs_that_do_not_apply_or_give_no_signal_leave_it_not_yet():
    points = trajectory((0, 20), (28, 20))
    assert on_track(watching("stard-qids", "phq9-item9", "overdue"), "PHQ-9", points,
                    opened_on=OPENED) == "not_yet"
