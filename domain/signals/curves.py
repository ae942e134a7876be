"""A clinic's expected-recovery curves as recorded data, and the prediction interval they give.

Finch, Lambert & Schaalje 2001 model expected change as score against the log of the session (here:
the week of the episode, ``ln(1 + week)``), one curve per baseline severity band, and call a case
"not on track" above a tolerance band around it. The fit (ordinary least squares with statsmodels)
lives in application/recovery_fit.py; here is what it produces and records: per band the OLS
parameters, their covariance, the residual variance and the t quantile, from which the prediction
interval of any week is computed again without the library (ADR 0030). Pure domain.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.criteria.timeline import Point
from domain.errors import NaiveDatetimeError
from domain.signals.packs import baseline_band


@dataclass(frozen=True)
class BandCurve:
    """The expected score of one baseline band: ``score = intercept + slope * ln(1 + week)``
    (points; week as a float from the episode's opened_on), fitted by OLS (Finch et al. 2001).

    ``episodes`` and ``observations`` are what the band was fitted on; ``cov`` is
    (var(intercept), cov(intercept, slope), var(slope)); ``scale`` the residual variance
    (points², statsmodels' ``scale``); ``t_quantile`` the two-sided t(df_resid) quantile of the
    curve's probability (1.2816... for a large 80 % fit).
    """

    band: str
    episodes: int
    observations: int
    intercept: float
    slope: float
    cov: tuple[float, float, float]
    scale: float
    t_quantile: float

    def interval(self, week: float) -> tuple[float, float, float]:
        """``(expected, lower, upper)`` in points at ``week``: the OLS prediction interval of a new
        observation, equal to statsmodels' ``get_prediction().summary_frame(alpha=1-p)``
        ``mean`` / ``obs_ci_lower`` / ``obs_ci_upper``. With x = ln(1 + week):
        expected = a + b*x, var = [1 x] Cov [1 x]^T + scale, band = expected -/+ t*sqrt(var).

        Raises ValueError for a week <= -1 (no logarithm).
        """
        if week <= -1:
            raise ValueError(f"week {week} has no ln(1 + week)")
        x = math.log1p(week)
        var_a, cov_ab, var_b = self.cov
        expected = self.intercept + self.slope * x
        variance = var_a + 2 * x * cov_ab + x * x * var_b + self.scale
        half = self.t_quantile * math.sqrt(variance)
        return expected, expected - half, expected + half

    def describe(self) -> dict[str, Any]:
        """The band's curve as JSON data (floats as JSON numbers)."""
        return {"band": self.band, "episodes": self.episodes, "observations": self.observations,
                "intercept": self.intercept, "slope": self.slope, "cov": list(self.cov),
                "scale": self.scale, "t_quantile": self.t_quantile}

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> BandCurve:
        """The band curve a ``describe()`` document describes."""
        var_a, cov_ab, var_b = (float(v) for v in d["cov"])
        return cls(str(d["band"]), int(d["episodes"]), int(d["observations"]),
                   float(d["intercept"]), float(d["slope"]), (var_a, cov_ab, var_b),
                   float(d["scale"]), float(d["t_quantile"]))


@dataclass(frozen=True)
class RecoveryCurve:
    """A clinic's fitted expected-recovery model for one instrument, as recorded.

    ``probability`` is the prediction interval's coverage ("0.8"); ``min_episodes`` the fewest
    episodes a band needs for a curve; ``fitted_at`` (timezone-aware) when it was fitted;
    ``as_of`` the clinical date of the data; ``episodes`` how many closed episodes were used and
    ``episode_ids_hash`` the SHA-256 (hex) of their sorted ids, one per line; ``bands`` the curves
    of bands with at least ``min_episodes`` episodes; ``band_counts`` the episodes of every band,
    too-small ones included; ``pack`` the ref of the expected-recovery pack it was fitted for.
    Raises NaiveDatetimeError for a naive ``fitted_at``.
    """

    clinic_id: str
    instrument: str
    probability: str
    min_episodes: int
    fitted_at: datetime
    as_of: date
    episodes: int
    episode_ids_hash: str
    bands: tuple[BandCurve, ...]
    band_counts: dict[str, int]
    pack: dict[str, str]

    def __post_init__(self) -> None:
        if self.fitted_at.tzinfo is None or self.fitted_at.utcoffset() is None:
            raise NaiveDatetimeError("fitted_at must be timezone-aware", field="fitted_at")

    def _body(self) -> dict[str, Any]:
        return {
            "id": f"expected-recovery-fit:{self.clinic_id}:{self.instrument}",
            "version": self.fitted_at.isoformat(),
            "clinic_id": self.clinic_id, "instrument": self.instrument,
            "probability": self.probability, "min_episodes": self.min_episodes,
            "fitted_at": self.fitted_at.isoformat(), "as_of": self.as_of.isoformat(),
            "episodes": self.episodes, "episode_ids_hash": self.episode_ids_hash,
            "bands": [b.describe() for b in self.bands],
            "band_counts": dict(self.band_counts), "pack": dict(self.pack),
        }

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of ``describe()`` without ``"hash"``."""
        doc = json.dumps(self._body(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()

    def ref(self) -> dict[str, str]:
        """``{"id": "expected-recovery-fit:<clinic>:<instrument>", "version": fitted_at (ISO),
        "hash"}``: what a signal's evidence records as its ``fit``."""
        body = self._body()
        return {"id": body["id"], "version": body["version"], "hash": self.hash}

    def describe(self) -> dict[str, Any]:
        """The whole model as JSON data (ref fields first), as RecoveryCurveFitted stores it."""
        return {**self._body(), "hash": self.hash}

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> RecoveryCurve:
        """The curve a ``describe()`` document describes.

        Raises ValueError when the document carries a ``hash`` that is not its content's."""
        curve = cls(
            clinic_id=str(d["clinic_id"]), instrument=str(d["instrument"]),
            probability=str(d["probability"]), min_episodes=int(d["min_episodes"]),
            fitted_at=datetime.fromisoformat(d["fitted_at"]),
            as_of=date.fromisoformat(d["as_of"]), episodes=int(d["episodes"]),
            episode_ids_hash=str(d["episode_ids_hash"]),
            bands=tuple(BandCurve.from_description(b) for b in d["bands"]),
            band_counts={str(k): int(v) for k, v in d["band_counts"].items()},
            pack={str(k): str(v) for k, v in d["pack"].items()},
        )
        if "hash" in d and d["hash"] != curve.hash:
            raise ValueError("recovery curve description does not match its hash")
        return curve

    def band_of(self, baseline_points: Point | Sequence[Point]) -> str:
        """The baseline severity band (e.g. "moderately severe") of the episode whose baseline is
        ``baseline_points`` (a Point, or the episode's points in clinical order: the first one),
        on this curve's instrument (PHQ-9, QIDS-SR16: domain.instruments; HAM-D17: Zimmerman et
        al. 2013). Raises ValueError for no points or an instrument without bands."""
        if isinstance(baseline_points, Point):
            first = baseline_points
        elif baseline_points:
            first = baseline_points[0]
        else:
            raise ValueError("no baseline point")
        return baseline_band(None, self.instrument, first.value)

    def curve_for(self, band: str) -> BandCurve | None:
        """The curve of ``band``, or None when the band had fewer than ``min_episodes``."""
        return next((b for b in self.bands if b.band == band), None)

    def count_of(self, band: str) -> int:
        """How many of the fit's episodes started in ``band`` (0 when none)."""
        return self.band_counts.get(band, 0)


def episode_ids_hash(episode_ids: Sequence[str]) -> str:
    """SHA-256 (hex) of the sorted episode ids, one per line (no trailing newline)."""
    return hashlib.sha256("\n".join(sorted(episode_ids)).encode()).hexdigest()
