"""One stage vocabulary: every stage ``current_stage`` can answer is in ``domain.stages.STAGES``
(which the API's ``?stage=`` filter and response schemas use)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from domain.episode import STAGE_EVENT_TYPES, StageState, current_stage
from domain.stages import STAGES


def test_every_stage_the_state_machine_reaches_is_in_the_vocabulary() -> None:
    kinds = [(t, d) for t in STAGE_EVENT_TYPES
             for d in (("partial", "full") if t == "RemissionReached" else (None,))]
    reached = {current_stage([])}
    for sequence in itertools.product(kinds, repeat=2):
        stages = [StageState(f"s{i}", t, date(2026, 1, 5) + timedelta(days=7 * i), "a", d, None)
                  for i, (t, d) in enumerate(sequence)]
        reached.add(current_stage(stages))
    assert reached == set(STAGES)
