"""Expected recovery (Finch, Lambert & Schaalje 2001) with a hand-built curve: the band's interval
at week 9 and week 3 derived by hand, the statuses and sentences, and the "insufficient" cases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from signals_helpers import OPENED, trajectory

from domain.signals.curves import BandCurve, RecoveryCurve
from domain.signals.evaluate import applies, current_signal
from domain.signals.packs import get_rule_pack

PACK = get_rule_pack("expected-recovery")
# moderately severe start: score = 16 - 4 ln(1 + week); Cov = [[0.25, -0.1], [-0.1, 0.04]],
# scale 9, t 1.3. Week 9 (day 63), x = ln 10 = 2.302585: expected 16 - 9.210340 = 6.789660,
# var = 0.25 - 0.2 x + 0.04 x^2 + 9 = 0.25 - 0.460517 + 0.212076 + 9 = 9.001559,
# half = 1.3 * 3.000260 = 3.900338 -> [2.889322, 10.689997].
MODERATELY_SEVERE = BandCurve(band="moderately severe", episodes=240, observations=1310,
                              intercept=16.0, slope=-4.0, cov=(0.25, -0.1, 0.04), scale=9.0,
                              t_quantile=1.3)
CURVE = RecoveryCurve(
    clinic_id="clinic-a", instrument="PHQ-9", probability="0.8", min_episodes=30,
    fitted_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC), as_of=date(2026, 5, 31),
    episodes=252, episode_ids_hash="0" * 64, bands=(MODERATELY_SEVERE,),
    band_counts={"moderately severe": 240, "severe": 12}, pack=PACK.ref(),
)


def signal(points, curve=CURVE, pack=PACK):
    return current_signal(pack, points, opened_on=OPENED, curve=curve)


def test_above_the_band_is_not_on_track_with_the_evidence():
    s = signal(trajectory((0, 16), (28, 14), (63, 15)))
    assert (s.status, s.assessment_id, s.week, s.decision_point, s.rule) == (
        "not_on_track", "d63", 9.0, None, PACK.ref())
    assert s.evidence == {"score": 15, "expected": 6.8, "band": [2.9, 10.7],
                          "baseline_band": "moderately severe", "baseline_score": 16,
                          "probability": "0.8", "fit": CURVE.ref(), "episodes": 240}
    assert s.explanation == ("PHQ-9 15 at week 9 is above the expected 3-11 for a moderately "
                             "severe start (expected-recovery v1.0.0, fitted on 240 episodes)")


@pytest.mark.parametrize(("score", "status", "sentence"), [
    (11, "not_on_track", "above the expected 2.9-10.7"),  # 11 > 10.69: "3-11" would contradict
    (10, "on_track", "within the expected 3-11"),
    (3, "on_track", "within the expected 3-11"),
    (2, "on_track", "below the expected 3-11"),
])
def test_the_band_edges_at_week_9(score, status, sentence):
    s = signal(trajectory((0, 16), (63, score)))
    assert s.status == status
    assert s.explanation == (f"PHQ-9 {score} at week 9 is {sentence} for a moderately severe "
                             "start (expected-recovery v1.0.0, fitted on 240 episodes)")


def test_the_first_evaluated_week_is_3():
    # day 21, x = ln 4: expected 10.454823, band [6.544088, 14.365557]
    assert signal(trajectory((0, 16), (20, 20))) is None
    s = signal(trajectory((0, 16), (20, 20), (21, 15)))
    assert (s.status, s.week, s.evidence["expected"], s.evidence["band"]) == (
        "not_on_track", 3.0, 10.5, [6.5, 14.4])


def test_a_later_earliest_week_waits_longer():
    later = PACK.with_params({"earliest_week": 6})
    assert signal(trajectory((0, 16), (41, 20)), pack=later) is None
    assert signal(trajectory((0, 16), (42, 20)), pack=later).week == 6.0


def test_the_baseline_alone_decides_nothing():
    assert signal(trajectory((30, 16))) is None
    assert signal([]) is None


def test_the_latest_point_decides_and_can_clear():
    points = trajectory((0, 16), (63, 15), (70, 8))
    assert [signal(points[:n]).status for n in (2, 3)] == ["not_on_track", "on_track"]


def test_without_a_fit_the_signal_says_so():
    s = signal(trajectory((0, 16), (63, 15)), curve=None)
    assert (s.status, s.assessment_id, s.week) == ("insufficient", "d63", 9.0)
    assert s.evidence == {"score": 15, "baseline_band": "moderately severe", "episodes": 0,
                          "min_episodes": 30, "fit": None}
    assert s.explanation == ("no expected-recovery curve for a moderately severe PHQ-9 start: "
                             "the clinic has no fit yet (expected-recovery v1.0.0)")


def test_a_band_with_too_few_episodes_is_insufficient():
    s = signal(trajectory((0, 22), (63, 15)))
    assert (s.status, s.evidence) == ("insufficient", {
        "score": 15, "baseline_band": "severe", "episodes": 12, "min_episodes": 30,
        "fit": CURVE.ref()})
    assert s.explanation == ("no expected-recovery curve for a severe PHQ-9 start: the clinic's "
                             "fit has 12 such episodes, 30 are needed (expected-recovery v1.0.0)")


def test_a_band_without_episodes_is_insufficient():
    s = signal(trajectory((0, 7), (63, 4)))
    assert s.explanation == ("no expected-recovery curve for a mild PHQ-9 start: the clinic's "
                             "fit has 0 such episodes, 30 are needed (expected-recovery v1.0.0)")


def test_insufficient_also_waits_for_week_3():
    assert signal(trajectory((0, 22), (14, 15)), curve=None) is None


def test_expected_recovery_applies_to_the_instruments_with_baseline_bands_or_the_curves():
    assert [applies(PACK, i) for i in ("PHQ-9", "QIDS-SR16", "HAM-D17", "MADRS", "GAD-7")] == [
        True, True, True, False, False]
    assert applies(PACK, "PHQ-9", CURVE) and not applies(PACK, "QIDS-SR16", CURVE)
    assert signal(trajectory((0, 16), (63, 15), instrument="QIDS-SR16")) is None


def test_a_hamd17_start_is_banded_by_zimmerman_2013():
    s = signal(trajectory((0, 24), (63, 15), instrument="HAM-D17"), curve=None)
    assert s.evidence["baseline_band"] == "severe"
    s = signal(trajectory((0, 23), (63, 15), instrument="HAM-D17"), curve=None)
    assert s.evidence["baseline_band"] == "moderate"
