"""The episode page's chart inputs (api.ui.episode_chart): the instruments' bands as inclusive
ranges, the criteria's thresholds labelled with id and version, the slug of the ids, and the
expected-recovery band from a clinic's curve (Finch et al. 2001 prediction interval)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from api.ui.charts import ScorePoint, SeverityBand, Threshold
from api.ui.episode_chart import expected_band, severity_bands, slug, thresholds
from domain.criteria.builtin import get_criteria
from domain.instruments import GAD7, PHQ9
from domain.signals.curves import BandCurve, RecoveryCurve
from domain.signals.packs import get_rule_pack

OPENED = date(2026, 1, 5)


def test_bands_are_inclusive_ranges_up_to_the_scales_maximum():
    assert severity_bands(PHQ9) == (
        SeverityBand(0, 4, "minimal"), SeverityBand(5, 9, "mild"), SeverityBand(10, 14, "moderate"),
        SeverityBand(15, 19, "moderately severe"), SeverityBand(20, 27, "severe"))
    assert severity_bands(GAD7)[-1] == SeverityBand(15, 21, "severe")


def test_thresholds_are_the_criteria_sets_with_its_id_and_version():
    acnp = get_criteria("acnp2006")
    assert thresholds(acnp, "PHQ-9") == (
        Threshold(5, "remission below 5 (acnp2006 v1.0.0)"),
        Threshold(10, "episode from 10 (acnp2006 v1.0.0)"))
    assert thresholds(acnp, "GAD-7") == ()


@pytest.mark.parametrize("code, expected", [("PHQ-9", "phq-9"), ("HAM-D17", "ham-d17"),
                                            ("QIDS-SR16", "qids-sr16"), ("PHQ-A", "phq-a")])
def test_slug(code, expected):
    assert slug(code) == expected


def curve() -> RecoveryCurve:
    band = BandCurve(band="moderately severe", episodes=240, observations=1310, intercept=16.0,
                     slope=-4.0, cov=(0.25, -0.1, 0.04), scale=9.0, t_quantile=1.3)
    return RecoveryCurve(
        clinic_id="clinic-north", instrument="PHQ-9", probability="0.8", min_episodes=30,
        fitted_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), as_of=date(2025, 12, 31),
        episodes=252, episode_ids_hash="0" * 64, bands=(band,),
        band_counts={"moderately severe": 240}, pack=get_rule_pack("expected-recovery").ref())


def test_the_expected_band_is_the_curves_interval_at_each_valid_points_week():
    watching = {"packs": [get_rule_pack("expected-recovery").describe()],
                "curve": curve().describe()}
    shown = (ScorePoint(OPENED, 1, 18), ScorePoint(date(2026, 1, 12), 2, 16, voided=True),
             ScorePoint(date(2026, 1, 19), 3, 13))
    first, second = expected_band(watching, "PHQ-9", OPENED, shown)
    # week 0: 16 -/+ 1.3 * sqrt(0.25 + 9); week 2 (x = ln 3): 11.61 -/+ 1.3 * sqrt(9.079)
    assert (first.on, first.session, first.low, first.high) == (OPENED, 1, 12.05, 19.95)
    assert (second.on, second.session, second.low, second.high) == (
        date(2026, 1, 19), 3, 7.69, 15.52)
    assert expected_band(None, "PHQ-9", OPENED, shown) == ()  # the defaults: no curve
    severe = (ScorePoint(OPENED, 1, 24),)  # a band the curve has no fit for
    assert expected_band(watching, "PHQ-9", OPENED, severe) == ()
