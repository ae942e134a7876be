"""Recovery curves: BandCurve.interval by hand and against statsmodels' OLS prediction interval;
RecoveryCurve's describe / from_description / hash / ref, band_of and curve_for."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from signals_helpers import point

from domain.errors import NaiveDatetimeError
from domain.signals.curves import BandCurve, RecoveryCurve, episode_ids_hash
from domain.signals.packs import get_rule_pack

BAND = BandCurve(band="moderately severe", episodes=240, observations=1310, intercept=16.0,
                 slope=-4.0, cov=(0.25, -0.1, 0.04), scale=9.0, t_quantile=1.3)


def curve(**changes):
    fields = dict(
        clinic_id="clinic-a", instrument="PHQ-9", probability="0.8", min_episodes=30,
        fitted_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC), as_of=date(2026, 5, 31),
        episodes=252, episode_ids_hash=episode_ids_hash(["e2", "e1"]), bands=(BAND,),
        band_counts={"moderately severe": 240, "severe": 12},
        pack=get_rule_pack("expected-recovery").ref())
    return RecoveryCurve(**{**fields, **changes})


def test_interval_by_hand_where_ln_1_plus_week_is_1_and_2():
    # x = 1: expected 16 - 4 = 12; var = 0.25 - 0.2 + 0.04 + 9 = 9.09; half = 1.3 sqrt(9.09)
    expected, lower, upper = BAND.interval(math.e - 1)
    assert expected == pytest.approx(12.0)
    assert (lower, upper) == (pytest.approx(8.080548508), pytest.approx(15.919451492))
    # x = 2: expected 8; var = 0.25 - 0.4 + 0.16 + 9 = 9.01; half = 1.3 sqrt(9.01) = 3.902166
    expected, lower, upper = BAND.interval(math.e ** 2 - 1)
    assert expected == pytest.approx(8.0)
    assert (lower, upper) == (pytest.approx(4.097833935), pytest.approx(11.902166065))


def test_interval_at_week_0_is_the_intercept():
    assert BAND.interval(0) == pytest.approx((16.0, 16 - 1.3 * math.sqrt(9.25),
                                              16 + 1.3 * math.sqrt(9.25)))


def test_no_interval_without_a_logarithm():
    with pytest.raises(ValueError):
        BAND.interval(-1)


@pytest.mark.parametrize("probability", [0.8, 0.9])
def test_interval_equals_statsmodels_ols_prediction_interval(probability):
    rng = np.random.default_rng(13)
    weeks = rng.uniform(0, 16, size=400)
    scores = 18 - 4.5 * np.log1p(weeks) + rng.normal(0, 3, size=400)
    fit = sm.OLS(scores, sm.add_constant(np.log1p(weeks))).fit()
    cov = fit.cov_params()
    band = BandCurve(
        band="moderate", episodes=80, observations=400, intercept=float(fit.params[0]),
        slope=float(fit.params[1]), cov=(float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])),
        scale=float(fit.scale), t_quantile=float(stats.t.ppf((1 + probability) / 2, fit.df_resid)))
    query = np.array([0.0, 1.5, 3.0, 4.0, 9.0, 14.0, 26.0])
    frame = fit.get_prediction(sm.add_constant(np.log1p(query), has_constant="add")).summary_frame(
        alpha=1 - probability)
    for week, mean, low, high in zip(query, frame["mean"], frame["obs_ci_lower"],
                                     frame["obs_ci_upper"], strict=True):
        assert band.interval(float(week)) == pytest.approx((mean, low, high), rel=1e-9, abs=1e-9)


def test_describe_round_trips_through_json_with_the_same_hash():
    original = curve()
    stored = json.loads(json.dumps(original.describe()))
    again = RecoveryCurve.from_description(stored)
    assert again == original
    assert again.hash == original.hash == stored["hash"]
    assert again.describe() == stored


def test_the_hash_is_of_the_canonical_description_without_the_hash():
    described = curve().describe()
    body = {k: v for k, v in described.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert described["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert curve(episodes=253).hash != curve().hash


def test_ref_names_clinic_instrument_and_fitting_time():
    assert curve().ref() == {"id": "expected-recovery-fit:clinic-a:PHQ-9",
                             "version": "2026-06-01T12:00:00+00:00", "hash": curve().hash}


def test_describe_holds_every_field():
    described = curve().describe()
    assert described["bands"] == [{
        "band": "moderately severe", "episodes": 240, "observations": 1310, "intercept": 16.0,
        "slope": -4.0, "cov": [0.25, -0.1, 0.04], "scale": 9.0, "t_quantile": 1.3}]
    assert {k: described[k] for k in ("clinic_id", "instrument", "probability", "min_episodes",
                                      "fitted_at", "as_of", "episodes", "band_counts")} == {
        "clinic_id": "clinic-a", "instrument": "PHQ-9", "probability": "0.8", "min_episodes": 30,
        "fitted_at": "2026-06-01T12:00:00+00:00", "as_of": "2026-05-31", "episodes": 252,
        "band_counts": {"moderately severe": 240, "severe": 12}}


def test_a_description_that_does_not_match_its_hash_is_refused():
    stored = curve().describe()
    stored["bands"][0]["slope"] = -4.5
    with pytest.raises(ValueError):
        RecoveryCurve.from_description(stored)


def test_fitted_at_must_be_timezone_aware():
    with pytest.raises(NaiveDatetimeError):
        curve(fitted_at=datetime(2026, 6, 1, 12, 0))


def test_episode_ids_hash_is_of_the_sorted_ids_one_per_line():
    assert episode_ids_hash(["e2", "e1"]) == hashlib.sha256(b"e1\ne2").hexdigest()


@pytest.mark.parametrize(("instrument", "score", "band"), [
    ("PHQ-9", 14, "moderate"), ("PHQ-9", 15, "moderately severe"), ("PHQ-9", 20, "severe"),
    ("QIDS-SR16", 15, "moderate"), ("QIDS-SR16", 16, "severe"),
    ("HAM-D17", 7, "no depression"), ("HAM-D17", 8, "mild"), ("HAM-D17", 16, "mild"),
    ("HAM-D17", 17, "moderate"), ("HAM-D17", 23, "moderate"), ("HAM-D17", 24, "severe"),
])
def test_band_of_the_baseline(instrument, score, band):
    c = curve(instrument=instrument)
    assert c.band_of([point(0, score, instrument), point(28, 3, instrument)]) == band
    assert c.band_of(point(0, score, instrument)) == band


def test_band_of_no_points_is_an_error():
    with pytest.raises(ValueError):
        curve().band_of([])


def test_curve_for_a_band_without_enough_episodes_is_none():
    assert curve().curve_for("moderately severe") is BAND
    assert curve().curve_for("severe") is None
    assert (curve().count_of("severe"), curve().count_of("mild")) == (12, 0)
