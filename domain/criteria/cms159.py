"""CMS159 Depression Remission at Twelve Months (SPEC §2.5, C9).

The measure's logic as in the CMS159 FHIR CQL (cqframework eCQM content, 2024 library 0.2.000 and
2025 library 0.3.000): an index PHQ-9 above 9, a window of 12 calendar months ± 60 days, and the
last score in the window below 5. Visits, diagnoses, ages and result statuses are the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Point, add_months

# The measure's value set "PHQ-9 and PHQ-9M" (C9): the PHQ-9M is the product's PHQ-A. Either may
# be the index and either the follow-up (SPEC §1.2b).
MEASURED = ("PHQ-9", "PHQ-A")


def cms159_outcome(scored: Sequence[Point], criteria: CriteriaSet) -> dict[str, Any]:
    """CMS159 Depression Remission at Twelve Months (SPEC §2.5, C9).

    ``scored``: the episode's day scores (``day_scores``). Index = first scorable PHQ-9 or PHQ-9M
    (PHQ-A) above ``index_above``; window = index + 12 calendar months ± 60 days (closed, in
    days); met = the last PHQ-9 or PHQ-9M after the index inside the window is below
    ``remission_below``
    (``window_rule=any``: any such score). Returns ``met`` (bool), ``in_denominator``,
    ``index``, ``window`` and ``measure_assessment`` (evidence dicts), and ``reason`` when no
    index exists.
    """
    params = criteria.params
    measured = [p for p in scored if p.obs.instrument in MEASURED and p.score.scorable]
    index = next((p for p in measured if p.value > params["index_above"]), None)
    if index is None:
        return {"met": False, "in_denominator": False, "index": None, "window": None,
                "measure_assessment": None,
                "reason": f"no PHQ-9 above {params['index_above']} to index the measure"}
    anchor = add_months(index.on, params["window_months"])
    start = anchor - timedelta(days=params["window_tolerance_days"])
    end = anchor + timedelta(days=params["window_tolerance_days"])
    window = [p for p in measured if p.on > index.on and start <= p.on <= end]
    below = [p for p in window if p.value < params["remission_below"]]
    if params["window_rule"] == "any":
        chosen = below[-1] if below else (window[-1] if window else None)
        met = bool(below)
    else:
        chosen = window[-1] if window else None
        met = chosen is not None and chosen.value < params["remission_below"]
    return {"met": met, "in_denominator": True, "index": index.evidence(),
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "measure_assessment": chosen.evidence() if chosen else None}
