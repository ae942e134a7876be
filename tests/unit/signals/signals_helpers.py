"""Points of an episode for signal tests, dated by day of the episode (imported by name)."""

from __future__ import annotations

from datetime import date, timedelta

from domain.criteria.timeline import Observation, Point
from domain.instruments import score_memoised

OPENED = date(2026, 1, 5)  # the episode's opened_on: day 0, week 0


def point(day: int, total: int | None, instrument: str = "PHQ-9", *,
          items: tuple[int | None, ...] | None = None) -> Point:
    """A scored point of ``instrument`` on day ``day`` of the episode (assessment id ``d<day>``)."""
    obs = Observation(f"d{day}", instrument, OPENED + timedelta(days=day), items=items,
                      total=total)
    score = score_memoised(instrument, items, total, missing_policy="prorate_le2",
                           rounding="none")
    return Point(obs, score)


def trajectory(*days_scores: tuple[int, int], instrument: str = "PHQ-9") -> list[Point]:
    """Points ``(day, score)`` in clinical order."""
    return [point(day, score, instrument) for day, score in days_scores]
