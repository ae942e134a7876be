"""The expected-recovery fit (application.recovery_fit; Finch, Lambert & Schaalje 2001) on a
generated cohort with a known curve, at the min_episodes boundary, and against statsmodels'
own prediction intervals."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
import statsmodels.api as sm
from fit_helpers import TRUE_INTERCEPT, TRUE_SD, TRUE_SLOPE, WEEKS, cohort, series

from application.recovery_fit import fit_recovery_curve
from domain.errors import NaiveDatetimeError
from domain.signals.curves import RecoveryCurve, episode_ids_hash
from domain.signals.packs import get_rule_pack

PACK = get_rule_pack("expected-recovery")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
AS_OF = date(2025, 12, 31)


def fit(episodes: list, pack=PACK):  # type: ignore[no-untyped-def]
    return fit_recovery_curve("c1", "HAM-D17", episodes, pack=pack, now=NOW, as_of=AS_OF)


def test_the_fitted_curve_is_within_tolerance_of_the_truth_and_covers_80_percent() -> None:
    curve = fit(cohort(300, seed=13))
    severe = curve.curve_for("severe")
    assert severe is not None
    assert (severe.episodes, severe.observations) == (300, 300 * len(WEEKS))
    # standard errors are ~0.15 (intercept) and ~0.08 (slope) points; the baseline's redraw
    # below 24 lifts week 0 by a little: 0.6 and 0.3 points of tolerance
    assert abs(severe.intercept - TRUE_INTERCEPT) < 0.6
    assert abs(severe.slope - TRUE_SLOPE) < 0.3
    assert abs(math.sqrt(severe.scale) - TRUE_SD) < 0.3
    # 2100 new observations of a fresh cohort: 80 % inside the 80 % prediction interval (± 3 %)
    fresh = cohort(300, seed=14, prefix="new")
    inside = [severe.interval(s.week(p))[1] <= float(p.value) <= severe.interval(s.week(p))[2]
              for s in fresh for p in s.points]
    assert abs(sum(inside) / len(inside) - 0.80) < 0.03
    assert curve.band_counts == {"no depression": 0, "mild": 0, "moderate": 0, "severe": 300}
    assert [b.band for b in curve.bands] == ["severe"]


def test_the_recorded_parameters_give_statsmodels_own_prediction_interval() -> None:
    episodes = cohort(40, seed=3)
    severe = fit(episodes).curve_for("severe")
    assert severe is not None
    weeks = np.array([s.week(p) for s in episodes for p in s.points])
    scores = np.array([float(p.value) for s in episodes for p in s.points])
    result = sm.OLS(scores, sm.add_constant(np.log1p(weeks))).fit()
    at = np.array([0.0, 3.0, 4.5, 9.0, 26.0])
    frame = result.get_prediction(sm.add_constant(np.log1p(at), has_constant="add")
                                  ).summary_frame(alpha=0.2)
    for week, (_, row) in zip(at, frame.iterrows(), strict=True):
        expected, lower, upper = severe.interval(float(week))
        assert expected == pytest.approx(row["mean"], rel=1e-12)
        assert lower == pytest.approx(row["obs_ci_lower"], rel=1e-12)
        assert upper == pytest.approx(row["obs_ci_upper"], rel=1e-12)
    assert severe.t_quantile == pytest.approx(1.2816, abs=0.01)  # df 278: near the normal's


@pytest.mark.parametrize(("in_band", "fitted"), [(5, True), (4, False)])
def test_a_band_needs_min_episodes(in_band: int, fitted: bool) -> None:
    pack = PACK.with_params({"min_episodes": 5})
    episodes = cohort(in_band, seed=7)
    # two moderate starts: counted, never fitted
    episodes += [series("m1", [(0, 20), (28, 14)]), series("m2", [(0, 18), (28, 10)])]
    curve = fit(episodes, pack)
    assert (curve.curve_for("severe") is not None) is fitted
    assert curve.curve_for("moderate") is None
    assert curve.band_counts == {"no depression": 0, "mild": 0, "moderate": 2, "severe": in_band}
    assert (curve.min_episodes, curve.episodes, curve.pack) == (5, in_band + 2, pack.ref())


def test_what_the_fit_records_about_its_input() -> None:
    episodes = [*cohort(3, seed=1), series("only-baseline", [(0, 30)]),
                series("phq", [(0, 20), (28, 10)], instrument="PHQ-9")]
    curve = fit(episodes, PACK.with_params({"min_episodes": 3}))
    # the baseline-only episode and the PHQ-9 one say nothing about HAM-D17 change: left out
    assert curve.episodes == 3
    assert curve.episode_ids_hash == episode_ids_hash(["gen-0000", "gen-0001", "gen-0002"])
    assert (curve.clinic_id, curve.instrument, curve.probability, curve.fitted_at,
            curve.as_of) == ("c1", "HAM-D17", "0.8", NOW, AS_OF)
    assert RecoveryCurve.from_description(curve.describe()) == curve
    assert RecoveryCurve.from_description(curve.describe()).hash == curve.hash


def test_a_naive_fitted_at_is_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        fit_recovery_curve("c1", "HAM-D17", cohort(3, seed=1), pack=PACK,
                           now=datetime(2026, 1, 1), as_of=AS_OF)


def test_an_instrument_without_bands_is_refused() -> None:
    with pytest.raises(ValueError, match="GAD-7"):
        fit_recovery_curve("c1", "GAD-7", [], pack=PACK, now=NOW, as_of=AS_OF)
