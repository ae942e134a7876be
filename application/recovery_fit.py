"""The expected-recovery fit: a clinic's closed episodes -> a ``RecoveryCurve`` (ADR 0033).

Finch, Lambert & Schaalje (Clin Psychol Psychother 2001;8:231-242) model the expected score
against the log of time in treatment, one curve per baseline severity band, and call a case not
on track above a tolerance band around it. Here: per baseline band, ordinary least squares with
statsmodels, ``score ~ 1 + ln(1 + week)`` (points against weeks since the episode opened, every
valid staged point of every episode of the band, its baseline included), and the two-sided
t(df_resid) quantile of the pack's probability. ``domain.signals.curves.BandCurve`` keeps the
parameters, their covariance and the residual variance, so the prediction interval of any week
is computed again from the record, without the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import statsmodels.api as sm
from scipy import stats

from domain.criteria.timeline import Point
from domain.episode import Episode
from domain.rules import staged_points
from domain.signals.curves import BandCurve, RecoveryCurve, episode_ids_hash
from domain.signals.packs import RulePack, baseline_band


@dataclass(frozen=True)
class EpisodeSeries:
    """One episode as the fit and the back-test read it: ``points``, the valid scorable points
    of the staged ``instrument`` (one per day, clinical order: ``domain.rules.staged_points``),
    ``opened_on`` day 0 of its weeks, ``closed_on`` its discharge (None while open) and
    ``remission_below`` its criteria set's full-remission threshold in points (None for a set
    without thresholds), ``patient_ref`` the episode's pseudonymous patient (the back-test keeps
    one patient's episodes in one cross-validation fold)."""

    episode_id: str
    instrument: str
    opened_on: date
    closed_on: date | None
    points: tuple[Point, ...]
    remission_below: int | None
    patient_ref: str

    @classmethod
    def of(cls, episode: Episode) -> EpisodeSeries:
        """The series of ``episode`` (its valid assessments under its criteria set in force)."""
        criteria = episode.criteria_set
        points = staged_points((a.observation() for a in episode.valid_assessments()), criteria,
                               episode.instrument)
        thresholds = criteria.thresholds(episode.instrument)
        return cls(str(episode.id), episode.instrument, episode.opened_on, episode.closed_on,
                   tuple(points), thresholds.remission_below if thresholds else None,
                   episode.patient_ref)

    def week(self, point: Point) -> float:
        """Weeks since the episode opened (days / 7, a float)."""
        return (point.on - self.opened_on).days / 7

    def content(self) -> str:
        """The episode's data as text, no id: instrument, opening and discharge dates, each
        staged score. What orders episodes in a fit and the back-test's folds, so that the
        same data give the same figures whatever the pseudonym key that made the ids."""
        scores = ";".join(f"{p.on.isoformat()}={p.value}" for p in self.points)
        return f"{self.instrument}|{self.opened_on}|{self.closed_on}|{scores}"


def fit_recovery_curve(clinic_id: str, instrument: str, episodes: Iterable[EpisodeSeries], *,
                       pack: RulePack, now: datetime, as_of: date) -> RecoveryCurve:
    """Fit the expected-recovery curves of ``clinic_id``'s ``instrument`` episodes.

    ``episodes``: the closed episodes to fit on (the caller chooses them; those of another
    instrument and those without a point after the baseline are left out: they say nothing about
    change). Each episode's band is its baseline's (``baseline_band``, the pack's bands). A band
    with fewer than ``pack.params["min_episodes"]`` episodes gets no curve but keeps its count in
    ``band_counts`` (every band of the instrument, 0 for none). ``now`` (aware) is ``fitted_at``,
    ``as_of`` the clinical date of the data. Raises ValueError for an instrument without baseline
    bands, NaiveDatetimeError for a naive ``now``.
    """
    used = sorted((e for e in episodes if e.instrument == instrument and len(e.points) >= 2),
                  key=lambda e: (e.content(), e.episode_id))
    labels = [str(b["label"]) for b in pack.params["bands"].get(instrument, ())]
    if not labels:
        raise ValueError(f"no baseline severity bands for {instrument}")
    by_band: dict[str, list[EpisodeSeries]] = {label: [] for label in labels}
    for series in used:
        by_band[baseline_band(pack, instrument, series.points[0].value)].append(series)
    min_episodes = int(pack.params["min_episodes"])
    probability = str(pack.params["probability"])
    fitted = (_band_curve(band, members, float(probability))
              for band, members in by_band.items() if len(members) >= min_episodes)
    return RecoveryCurve(
        clinic_id=clinic_id, instrument=instrument, probability=probability,
        min_episodes=min_episodes, fitted_at=now, as_of=as_of, episodes=len(used),
        episode_ids_hash=episode_ids_hash([e.episode_id for e in used]),
        bands=tuple(c for c in fitted if c is not None),
        band_counts={label: len(m) for label, m in by_band.items()},
        pack=pack.ref())


def _band_curve(band: str, members: Sequence[EpisodeSeries], probability: float
                ) -> BandCurve | None:
    """OLS of one band's points (score ~ 1 + ln(1 + week)); None when the points cannot
    determine a slope (all on one day) or leave no residual degree of freedom."""
    weeks = np.array([s.week(p) for s in members for p in s.points], dtype=float)
    scores = np.array([float(p.value) for s in members for p in s.points], dtype=float)
    design = sm.add_constant(np.log1p(weeks), has_constant="add")
    if np.linalg.matrix_rank(design) < 2 or len(scores) <= 2:
        return None
    result = sm.OLS(scores, design).fit()
    cov = result.cov_params()
    t_quantile = float(stats.t.ppf(0.5 + probability / 2, result.df_resid))
    return BandCurve(band=band, episodes=len(members), observations=len(scores),
                     intercept=float(result.params[0]), slope=float(result.params[1]),
                     cov=(float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])),
                     scale=float(result.scale), t_quantile=t_quantile)
