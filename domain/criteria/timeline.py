"""An episode's assessments as the fold reads them: observations, scored points, one per day.

``day_scores`` puts the assessments in clinical order (G1) and keeps one score per instrument and
day: the latest administration, amended by a later record of the same administration (G2, as
revised in SPEC §2.1); ``add_months`` is the calendar arithmetic of G3. Every set's fold starts from here.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.instruments import MissingPolicy, Points, Rounding, Score, points, score_memoised


@dataclass(frozen=True)
class Observation:
    """One recorded assessment as the fold sees it.

    ``on`` is the clinical (local calendar) date; ``administered_at`` the administration time
    (timezone-aware) when the source gave one, else None; ``items`` one entry per item (None =
    missing); ``total`` the reported total in points; ``recorded_at`` (timezone-aware) when it
    was recorded. Both times decide which of one day's records is its score (G2,
    ``days_record``). ``assessment_id`` is unique within the episode.
    """

    assessment_id: str
    instrument: str
    on: date
    items: tuple[int | None, ...] | None = None
    total: int | None = None
    recorded_at: datetime | None = None
    administered_at: datetime | None = None


@dataclass(frozen=True)
class Point:
    """A scored observation."""

    obs: Observation
    score: Score

    @property
    def on(self) -> date:
        return self.obs.on

    @property
    def id(self) -> str:
        return self.obs.assessment_id

    @property
    def value(self) -> Points:
        assert self.score.value is not None, "only scorable points are staged"
        return self.score.value

    def evidence(self) -> dict[str, Any]:
        return {"assessment_id": self.id, "date": self.on.isoformat(),
                "instrument": self.obs.instrument, "score": points(self.score.value)}


def add_months(day: date, months: int) -> date:
    """Calendar-month addition, clamped to the month's end (G3): 2026-01-31 + 1 -> 2026-02-28."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def score_observation(obs: Observation, criteria: CriteriaSet) -> Score:
    """Score ``obs`` under the set's missing-item policy and rounding (validates; see score()).

    Remembered per distinct input (``score_memoised``): the fold scores every assessment of an
    episode again at each command."""
    missing_policy, rounding = scoring(criteria)
    return score_memoised(obs.instrument, obs.items, obs.total, missing_policy=missing_policy,
                          rounding=rounding)


def scoring(criteria: CriteriaSet) -> tuple[MissingPolicy, Rounding]:
    """What of a set decides an assessment's score: its missing-item policy and its proration
    rounding (SPEC §1.4, C3). Two sets with the same pair score every assessment alike."""
    return criteria.params["missing_policy"], criteria.params["rounding"]


def _amendment_order(obs: Observation) -> tuple[bool, datetime, str]:
    return (obs.recorded_at is not None, obs.recorded_at or datetime.min, obs.assessment_id)


def days_record(records: Sequence[Observation]) -> Observation:
    """The record that is the day's score among ``records`` of one instrument on one date (G2).

    Records with different administration times are different administrations: only the
    latest-administered time (compared as instants) is a candidate. A record with that time, or
    without a time (date only: no evidence of another administration), is amended by a later
    recorded one: of the candidates, the latest ``recorded_at`` wins (ties: assessment id).
    Raises ValueError for no records.
    """
    times = [r.administered_at for r in records if r.administered_at is not None]
    latest = max(times) if times else None
    candidates = [r for r in records if r.administered_at is None or r.administered_at == latest]
    return max(candidates, key=_amendment_order)


def day_scores(observations: Iterable[Observation], criteria: CriteriaSet) -> list[Point]:
    """Scored points in clinical-date order (G1), one per instrument and day (G2, ``days_record``).

    Returns points sorted by (date, instrument, assessment id), unscorable points included; the
    result does not depend on the order of ``observations``. Raises the validation errors of
    score() for a malformed observation.
    """
    days: dict[tuple[str, date], list[Observation]] = {}
    for obs in observations:
        days.setdefault((obs.instrument, obs.on), []).append(obs)
    kept = sorted((records[0] if len(records) == 1 else days_record(records)
                   for records in days.values()),
                  key=lambda o: (o.on, o.instrument, o.assessment_id))
    return [Point(o, score_observation(o, criteria)) for o in kept]


