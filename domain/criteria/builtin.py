"""The built-in criteria sets of SPEC §2, as data, and how a set is looked up by id.

Durations marked [U] in the SPEC (Frank 1991's 14 and 56 days) stay parameters until the primary
table is checked; that is why ``frank1991`` is versioned ``1.0.0-draft``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.criteria.sets import CriteriaSet, Kind, validate_params
from domain.errors import InvalidCriteriaParameterError, UnknownCriteriaError

# C11: per-instrument zones. PHQ-9 per G9/G10; HAM-D17 <= 7 full, 8-15 partial (Frank 1991 via
# SPEC §1.3/§2.2), >= 16 episode [E]; QIDS-SR16 <= 5 (ids-qids.org), >= 11 episode [E].
_THRESHOLDS = {
    "PHQ-9": {"remission_below": 5, "episode_from": 10},
    "HAM-D17": {"remission_below": 8, "episode_from": 16},
    "QIDS-SR16": {"remission_below": 6, "episode_from": 11},
}
_LONGITUDINAL = {
    "missing_policy": "prorate_le2",
    "rounding": "none",
    "max_gap_days": 28,
    "response_min_fraction": "1/2",
    "thresholds": _THRESHOLDS,
}
_FRANK = "Frank E et al. Arch Gen Psychiatry 1991;48(9):851-855 (MacArthur consensus)"
_ACNP = "Rush AJ et al. Neuropsychopharmacology 2006;31(9):1841-1853 (ACNP Task Force)"


def _set(id: str, version: str, kind: Kind, title: str, source: str,
         params: Mapping[str, Any]) -> CriteriaSet:
    validate_params(kind, params)
    return CriteriaSet(id=id, version=version, kind=kind, title=title, source=source,
                       params=params)


_FRANK_PARAMS = {
    **_LONGITUDINAL,
    "partial_remission_min_span_days": 14,
    "full_remission_min_span_days": 14,
    "recovery_min_days_from_full_onset": 56,
}
_ACNP_PARAMS = {
    **_LONGITUDINAL,
    "minimal_status": "score",
    "remission_min_span_days": 21,
    "recovery_min_months_from_remission_onset": 4,
}

BUILTIN: dict[str, CriteriaSet] = {s.id: s for s in (
    _set("frank1991", "1.0.0-draft", "frank",
         "Frank et al. 1991: remission (partial, full), recovery after 8 weeks, relapse, recurrence",
         _FRANK, _FRANK_PARAMS),
    _set("frank1991-rec26w", "1.0.0-draft", "frank",
         "Frank et al. 1991 with recovery after 26 weeks of full remission",
         _FRANK + "; 6-month recovery: Möller, Riedel & Seemüller, Medicographia 2011",
         {**_FRANK_PARAMS, "recovery_min_days_from_full_onset": 182}),
    _set("acnp2006", "1.0.0", "acnp",
         "ACNP 2006: remission after 3 weeks of minimal symptoms (score proxy), recovery 4 months on",
         _ACNP, _ACNP_PARAMS),
    _set("acnp2006-symptom", "1.0.0", "acnp",
         "ACNP 2006 with the symptom rule on PHQ-9 items (no sad mood, no anhedonia, < 3 others)",
         _ACNP, {**_ACNP_PARAMS, "minimal_status": "symptom"}),
    _set("nhs-talking-therapies-2024", "1.0.0", "nhstt",
         "NHS Talking Therapies course outcomes at discharge (recovery, reliable improvement, ...)",
         "NHS Digital NHS Talking Therapies measure definitions 2024-25 (M076, M180, M186, M187, "
         "M192, M195, M1010); thresholds NHS Digital 2016 as tabulated in PMC8411661",
         {"missing_policy": "prorate_le2", "rounding": "none",
          "caseness": {"PHQ-9": 10, "GAD-7": 8},
          "reliable_change": {"PHQ-9": 6, "GAD-7": 4},
          "deterioration_rule": "none_improved",
          "require_both_measures_paired": True}),
    _set("cms159", "1.0.0", "cms159",
         "CMS159 Depression Remission at Twelve Months (last PHQ-9 in the window < 5)",
         "CMS159FHIRDepressionRemissionatTwelveMonths 0.3.000 (cqframework eCQM content 2025)",
         {"missing_policy": "prorate_le2", "rounding": "none", "window_rule": "last",
          "index_above": 9, "remission_below": 5, "window_months": 12,
          "window_tolerance_days": 60}),
)}


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["rounding=half_up", "max_gap_days=35"]`` -> ``{"rounding": "half_up", ...}``.

    Raises InvalidCriteriaParameterError for an entry without ``=``.
    """
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidCriteriaParameterError(f"expected KEY=VALUE, got {pair!r}", field="param")
        overrides[key.strip()] = value.strip()
    return overrides


def split_criteria_id(criteria_id: str) -> tuple[str, dict[str, str]]:
    """``"frank1991|rounding=half_up"`` -> ``("frank1991", {"rounding": "half_up"})``."""
    base_id, _, inline = str(criteria_id).partition("|")
    return base_id.strip(), parse_overrides([p for p in inline.split(",") if p.strip()])


def get_criteria(criteria_id: str, overrides: Mapping[str, Any] | None = None,
                 custom: Callable[[str], CriteriaSet | None] | None = None) -> CriteriaSet:
    """The set ``criteria_id`` (built-in, or found by ``custom``), or its variant.

    ``criteria_id`` may carry overrides in the SPEC's notation (``frank1991|rounding=half_up``,
    several separated by commas); ``overrides`` adds more. Raises UnknownCriteriaError or
    InvalidCriteriaParameterError.
    """
    base_id, merged = split_criteria_id(criteria_id)
    base = BUILTIN.get(base_id) or (custom(base_id) if custom else None)
    if base is None:
        raise UnknownCriteriaError(
            f"unknown criteria set {base_id!r}; known: {', '.join(BUILTIN)} and the custom sets",
            field="criteria")
    return base.with_params({**merged, **(overrides or {})})
