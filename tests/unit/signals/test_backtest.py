"""Back-testing by replay (application.backtest) on a hand-built small clinic: each episode's
prediction at each decision point and its outcome at discharge derived by hand below."""

from __future__ import annotations

from dataclasses import replace
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
from application.recovery_fit import EpisodeSeries
from domain.signals.curves import episode_ids_hash
from domain.signals.packs import get_rule_pack

SCHUELLER = get_rule_pack("schueller2015-phq9")  # not on track: >= 17 wk 4, >= 13 wk 9, >= 9 wk 14
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def phq(episode_id: str, scores: list[tuple[int, int]], closed: bool = True):  # type: ignore[no-untyped-def]
    return series(episode_id, scores, instrument="PHQ-9", remission_below=5, closed=closed)


# (day, PHQ-9 total); response = last <= half the baseline; remission = last < 5. A decision
# point is evaluated only with a score after its as-of day (7w + 7: days 35, 70, 105), else it
# counts as "no later score" (the prediction would rest on the outcome's own score).
CLINIC = [
    # wk4 18 >= 17 TP, wk9 14 >= 13 TP, wk14 12 >= 9 but day 98 is the last: no later score;
    # last 12 > 10: no response
    phq("a", [(0, 20), (28, 18), (63, 14), (98, 12)]),
    # wk4 17 (the boundary: not on track) FP, wk9 8 TN, wk14 6 no later score; last 6 <= 10:
    # response
    phq("b", [(0, 20), (28, 17), (63, 8), (98, 6)]),
    # wk4 16 < 17 FN (day 63 is later), wk9 13 (boundary) on day 63, the last: no later score;
    # wk14 no point in 91 +/- 7; last 13 > 11: no response
    phq("c", [(0, 22), (30, 16), (63, 13)]),
    # wk4 day 21 (the window's first day) 10 on track, but the last score: no later score
    phq("d", [(0, 18), (21, 10)]),
    # only a baseline: no outcome, left out
    phq("e", [(0, 16)]),
    # day 36 outside wk4's window (21..35): no signal; wk9 day 70 (its last day) 9 on track, the
    # last score: no later score
    phq("f", [(0, 24), (36, 9), (70, 9)]),
    # QIDS-SR16 and an open episode: the PHQ-9 pack does not apply / not closed
    series("g", [(0, 15), (28, 14)], instrument="QIDS-SR16"),
    phq("h", [(0, 20), (28, 20)], closed=False),
]


def rows(result):  # type: ignore[no-untyped-def]
    return {r.decision_point: (r.evaluated, r.not_on_track, r.tp, r.fp, r.tn, r.fn,
                               r.no_later_score) for r in result.rows}


def test_cut_points_against_response_counted_by_hand() -> None:
    result = backtest(SCHUELLER, "c1", CLINIC, outcome="response")
    assert (result.episodes, result.excluded) == (6, {"no score after baseline": 1})
    # evaluated, not on track, TP, FP, TN, FN, no later score
    assert rows(result) == {"week 4": (3, 2, 1, 1, 0, 1, 1), "week 9": (2, 1, 1, 0, 1, 0, 2),
                            "week 14": (0, 0, 0, 0, 0, 0, 2)}
    week4 = result.rows[0]
    assert (week4.sensitivity, week4.specificity, week4.ppv, week4.npv) == (0.5, 0.0, 0.5, 0.0)
    week9 = result.rows[1]
    assert (week9.sensitivity, week9.specificity, week9.ppv, week9.npv) == (1.0, 1.0, 1.0, 1.0)
    assert result.rows[2].sensitivity is None  # week 14: nothing evaluated, 0 / 0
    figures = result.as_json()["decision_points"][0]
    assert (figures["sensitivity"], figures["no_later_score"]) == (0.5, 1)
    assert "nothing fitted" in result.method


def test_against_remission_b_becomes_a_true_positive_and_a_false_negative() -> None:
    # no episode reaches < 5: every not-on-track is a TP, every on-track an FN
    result = backtest(SCHUELLER, "c1", CLINIC, outcome="remission")
    assert rows(result) == {"week 4": (3, 2, 2, 0, 0, 1, 1), "week 9": (2, 1, 1, 0, 0, 1, 2),
                            "week 14": (0, 0, 0, 0, 0, 0, 2)}
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
    # the cohort is assessed at weeks 4, 6, 8 and 12 (week 3 has no visit: no row); week 12
    # (day 84) is every episode's last score, so nothing comes later: none evaluated
    assert [r.decision_point for r in result.rows] == ["week 4", "week 6", "week 8", "week 12"]
    assert [(r.evaluated, r.no_later_score) for r in result.rows] == [
        (50, 0), (50, 0), (50, 0), (0, 50)]


def test_a_decision_point_whose_score_is_also_the_last_is_not_evaluated() -> None:
    # review 13: week 4's 18 (>= 17) is also the last score, the one "no response" is judged on:
    # prediction and outcome would be one observation. No score after day 35 (28 + 7): left out.
    only = phq("x", [(0, 20), (28, 18)])
    week4 = backtest(SCHUELLER, "c1", [only], now=NOW).rows[0]
    assert (week4.decision_point, week4.evaluated, week4.tp, week4.no_later_score) == (
        "week 4", 0, 0, 1)
    assert backtest(SCHUELLER, "c1", [only]).as_json()["decision_points"][0][
        "no_later_score"] == 1
    # a score on day 35 (the window's last day) is still not later than the as-of date
    at_edge = phq("y", [(0, 20), (28, 18), (35, 16)])
    assert backtest(SCHUELLER, "c1", [at_edge]).rows[0].no_later_score == 1
    # one on day 36 is: week 4 rests on day 28's 18, the outcome on day 36's 16 (> 10): a TP
    later = phq("z", [(0, 20), (28, 18), (36, 16)])
    week4 = backtest(SCHUELLER, "c1", [later]).rows[0]
    assert (week4.evaluated, week4.tp, week4.no_later_score) == (1, 1, 0)


def test_one_patients_episodes_share_a_fold() -> None:
    # review 13: 40 patients with two episodes each (a first episode and a recurrence). Dealt
    # by episode, a patient's other episode trains the curve that judges them.
    members = [s for p in range(40)
               for s in cohort(2, seed=p, prefix=f"p{p}-e", patient_ref=f"p{p}")]
    pack = get_rule_pack("expected-recovery").with_params({"min_episodes": 3})
    curves = _fold_curves(pack, "c1", "HAM-D17", members, NOW, seed=20010231)
    split = [p for p in range(40) if curves[f"p{p}-e-0000"] is not curves[f"p{p}-e-0001"]]
    assert split == []
    # dealt by patient: 8 patients (16 episodes) a fold, each curve fitted on the other 64
    assert {c.episodes for c in curves.values()} == {64}
    assert len({c.episode_ids_hash for c in curves.values()}) == FOLDS


def test_the_folds_and_figures_do_not_depend_on_the_ids_a_pseudonym_key_makes() -> None:
    """The same clinical data under other ids (another OUTCOMES_PSEUDONYM_KEY gives every
    patient and episode other ids) and in another order get the same folds, so the same curves
    judge the same trajectories and the back-test is the same, row for row: the folds are
    dealt by a digest of each patient's dates and scores (a new user's trial found week 4's
    count moving with the key)."""
    pack = get_rule_pack("expected-recovery").with_params({"min_episodes": 5})
    episodes = cohort(40, seed=3)
    relabelled = [replace(e, episode_id=f"other-{(i * 7919) % 1000:04d}",
                          patient_ref=f"pt-{(i * 104729) % 9973:05d}")
                  for i, e in enumerate(episodes)][::-1]

    def judged_by(members: list[EpisodeSeries]) -> dict[str, tuple[float, float]]:
        curves = _fold_curves(pack, "c1", "HAM-D17", members, NOW, seed=1)
        return {e.content(): (curves[e.episode_id].bands[0].intercept,
                              curves[e.episode_id].bands[0].slope) for e in members}
    assert judged_by(relabelled) == judged_by(episodes)
    assert len(set(judged_by(episodes).values())) == FOLDS  # five distinct training sets
    first = backtest(pack, "c1", episodes, outcome="response", now=NOW)
    second = backtest(pack, "c1", relabelled, outcome="response", now=NOW)
    assert [r.as_json() for r in first.rows] == [r.as_json() for r in second.rows]
