"""Back-testing by replay (application.backtest) on a hand-built small clinic: each episode's
prediction at each decision point and its outcome at discharge derived by hand below."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fit_helpers import cohort, series

from application.backtest import (
    FOLDS,
    NothingToBacktestError,
    _fold_curves,
    backtest,
    outcome_reached,
)
from domain.signals.curves import episode_ids_hash
from domain.signals.packs import get_rule_pack

SCHUELLER = get_rule_pack("schueller2015-phq9")  # not on track: >= 17 wk 4, >= 13 wk 9, >= 9 wk 14
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def phq(episode_id: str, scores: list[tuple[int, int]], closed: bool = True):  # type: ignore[no-untyped-def]
    return series(episode_id, scores, instrument="PHQ-9", remission_below=5, closed=closed)


# (day, PHQ-9 total); response = last <= half the baseline; remission = last < 5
CLINIC = [
    # wk4 18 >= 17 TP, wk9 14 >= 13 TP, wk14 12 >= 9 TP; last 12 > 10: no response
    phq("a", [(0, 20), (28, 18), (63, 14), (98, 12)]),
    # wk4 17 (the boundary: not on track) FP, wk9 8 TN, wk14 6 TN; last 6 <= 10: response
    phq("b", [(0, 20), (28, 17), (63, 8), (98, 6)]),
    # wk4 16 < 17 FN, wk9 13 (boundary) TP, wk14 no point in 91 +/- 7; last 13 > 11: no response
    phq("c", [(0, 22), (30, 16), (63, 13)]),
    # wk4 day 21 (the window's first day) 10 on track FN; last 10 > 9: no response
    phq("d", [(0, 18), (21, 10)]),
    # only a baseline: no outcome, left out
    phq("e", [(0, 16)]),
    # day 36 outside wk4's window (21..35); wk9 day 70 (its last day) 9 TN; last 9 <= 12: response
    phq("f", [(0, 24), (36, 9), (70, 9)]),
    # QIDS-SR16 and an open episode: the PHQ-9 pack does not apply / not closed
    series("g", [(0, 15), (28, 14)], instrument="QIDS-SR16"),
    phq("h", [(0, 20), (28, 20)], closed=False),
]


def rows(result):  # type: ignore[no-untyped-def]
    return {r.decision_point: (r.evaluated, r.not_on_track, r.tp, r.fp, r.tn, r.fn)
            for r in result.rows}


def test_cut_points_against_response_counted_by_hand() -> None:
    result = backtest(SCHUELLER, "c1", CLINIC, outcome="response")
    assert (result.episodes, result.excluded) == (6, {"no score after baseline": 1})
    assert rows(result) == {"week 4": (4, 2, 1, 1, 0, 2), "week 9": (4, 2, 2, 0, 2, 0),
                            "week 14": (2, 1, 1, 0, 1, 0)}
    week4 = result.rows[0]
    assert (week4.sensitivity, week4.specificity, week4.ppv, week4.npv) == (1 / 3, 0.0, 0.5, 0.0)
    week9 = result.rows[1]
    assert (week9.sensitivity, week9.specificity, week9.ppv, week9.npv) == (1.0, 1.0, 1.0, 1.0)
    assert result.as_json()["decision_points"][0]["sensitivity"] == 0.333
    assert "nothing fitted" in result.method


def test_against_remission_b_and_f_become_true_positives_and_negatives_change() -> None:
    # no episode reaches < 5: every not-on-track is a TP, every on-track an FN
    result = backtest(SCHUELLER, "c1", CLINIC, outcome="remission")
    assert rows(result) == {"week 4": (4, 2, 2, 0, 0, 2), "week 9": (4, 2, 2, 0, 0, 2),
                            "week 14": (2, 1, 1, 0, 0, 1)}
    assert result.rows[0].specificity is None  # no remitter: 0 / 0


def test_outcome_at_discharge_boundaries() -> None:
    assert outcome_reached(phq("x", [(0, 20), (28, 10)]), "response") is True   # exactly 50 %
    assert outcome_reached(phq("x", [(0, 20), (28, 11)]), "response") is False
    assert outcome_reached(phq("x", [(0, 20), (28, 4)]), "remission") is True   # 4 < 5
    assert outcome_reached(phq("x", [(0, 20), (28, 5)]), "remission") is False
    assert outcome_reached(phq("x", [(0, 20)]), "response") is None
    no_thresholds = series("y", [(0, 20), (28, 4)], instrument="PHQ-9", remission_below=None)
    assert outcome_reached(no_thresholds, "remission") is None


def test_a_rule_that_applies_to_no_closed_episode_says_so() -> None:
    hamd = [series("t1", [(0, 25), (28, 12)])]
    with pytest.raises(NothingToBacktestError, match="schueller2015-phq9 applies to none of "
                       r"clinic trial's 1 closed episodes \(instruments: HAM-D17\)"):
        backtest(SCHUELLER, "trial", hamd)
    with pytest.raises(ValueError, match="no on-track signal"):
        backtest(get_rule_pack("overdue"), "trial", hamd)


def test_expected_recovery_is_judged_with_curves_fitted_on_other_episodes() -> None:
    pack = get_rule_pack("expected-recovery").with_params({"min_episodes": 5})
    episodes = cohort(50, seed=2)
    curves = _fold_curves(pack, "c1", "HAM-D17", episodes, NOW, seed=1)
    everyone = [e.episode_id for e in episodes]
    for episode in episodes:
        curve = curves[episode.episode_id]
        assert curve.episodes == 50 - 50 // FOLDS  # fitted on the other four folds
        assert curve.episode_ids_hash != episode_ids_hash(everyone)
    # the folds' curves: five distinct training sets
    assert len({c.episode_ids_hash for c in curves.values()}) == FOLDS
    result = backtest(pack, "c1", episodes, outcome="response", now=NOW)
    assert "5-fold cross-validation" in result.method and "out of sample" in result.method
    # the cohort is assessed at weeks 4, 6, 8 and 12 (week 3 has no visit: no row)
    assert [r.decision_point for r in result.rows] == ["week 4", "week 6", "week 8", "week 12"]
    assert all(r.evaluated == 50 for r in result.rows)
