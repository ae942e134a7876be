"""Episode series for the fit and back-test tests: hand-made trajectories and a generated cohort
with a known curve (imported by name: no package)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date, timedelta

from application.recovery_fit import EpisodeSeries
from domain.criteria.builtin import get_criteria
from domain.criteria.timeline import Observation
from domain.rules import staged_points

OPENED = date(2025, 1, 6)
FRANK = get_criteria("frank1991")


def series(episode_id: str, scores: Sequence[tuple[int, int]], *, instrument: str = "HAM-D17",
           opened_on: date = OPENED, remission_below: int | None = 8,
           closed: bool = True, patient_ref: str | None = None) -> EpisodeSeries:
    """An episode with ``scores`` as (day since opening, total points), staged under frank1991;
    its patient is ``patient_ref`` (default: one patient per episode, named as the episode)."""
    observations = [Observation(f"{episode_id}-d{day}", instrument, opened_on + timedelta(days=day),
                                total=total) for day, total in scores]
    points = tuple(staged_points(observations, FRANK, instrument))
    last = max(day for day, _ in scores)
    return EpisodeSeries(episode_id, instrument, opened_on,
                         opened_on + timedelta(days=last) if closed else None, points,
                         remission_below, patient_ref or episode_id)


# The generated cohort's truth: HAM-D17 = 30 - 5 ln(1 + week) + N(0, 3²), rounded to whole
# points, at weeks 0, 1, 2, 4, 6, 8 and 12; every baseline is in the "severe" band (>= 24).
TRUE_INTERCEPT, TRUE_SLOPE, TRUE_SD = 30.0, -5.0, 3.0
WEEKS = (0, 1, 2, 4, 6, 8, 12)


def generated_score(rng: random.Random, week: int) -> int:
    value = TRUE_INTERCEPT + TRUE_SLOPE * math.log1p(week) + rng.gauss(0, TRUE_SD)
    return max(0, min(52, round(value)))


def cohort(n: int, *, seed: int, prefix: str = "gen",
           patient_ref: str | None = None) -> list[EpisodeSeries]:
    """``n`` severe-start HAM-D17 episodes drawn from the truth above (a baseline below 24 is
    drawn again, so every episode is in the band the test fits); all of patient ``patient_ref``
    when given, else one patient each."""
    rng = random.Random(seed)
    made = []
    for i in range(n):
        baseline = generated_score(rng, 0)
        while baseline < 24:
            baseline = generated_score(rng, 0)
        scores = [(0, baseline), *((7 * w, generated_score(rng, w)) for w in WEEKS[1:])]
        made.append(series(f"{prefix}-{i:04d}", scores, patient_ref=patient_ref))
    return made
