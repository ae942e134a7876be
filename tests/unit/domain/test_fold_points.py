"""The fold's ``points`` are ``domain.rules.staged_points`` of the same input (the trajectory the
episode's signals read after its re-fold, ADR 0031), under every built-in set."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.criteria.builtin import BUILTIN
from domain.criteria.fold import Observation, fold
from domain.rules import staged_points

DAY = date(2026, 1, 5)
OBSERVATIONS = [
    Observation("a", "PHQ-9", DAY, total=20),
    Observation("b", "GAD-7", DAY, total=12),
    Observation("c", "PHQ-9", date(2026, 1, 19), total=17),
    # the same day recorded again later: the later record is the day's score (G2)
    Observation("d", "PHQ-9", date(2026, 1, 19), total=15,
                recorded_at=datetime(2026, 1, 20, tzinfo=UTC)),
    Observation("e", "PHQ-9", date(2026, 2, 2), items=(1, 1, 1, 1, 1, 1, None, None, None)),
    Observation("f", "PHQ-9", date(2026, 2, 9), items=(2, 2, 2, 2, 2, 2, 2, 2, 1)),
]


@pytest.mark.parametrize("set_id", sorted(BUILTIN))
def test_the_folds_points_are_the_staged_points(set_id: str) -> None:
    criteria = BUILTIN[set_id]
    folded = fold(OBSERVATIONS, criteria, instrument="PHQ-9")
    assert list(folded.points) == staged_points(OBSERVATIONS, criteria, "PHQ-9")
    assert [p.id for p in folded.points] == ["a", "d", "f"]  # e is unscorable, b not staged
