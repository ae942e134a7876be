"""Rule packs as versioned data: id, semantic version, kind, source, parameters and a content hash.

A rule pack says when an episode is "not on track" (cut points at decision points, an expected
recovery curve), when an answer needs a safety review, or when an assessment is overdue. Like a
criteria set (ADR 0003) it never changes once published: overriding a parameter makes a variant
with its own id (``overdue|overdue_days=21``); the hash identifies the rules (kind and
parameters), so packs with equal rules share a hash. Every signal and alert records the pack's
``ref()`` (ADR 0030).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Literal

from domain.criteria.sets import assign_param
from domain.errors import InvalidRulePackParameterError, UnknownRulePackError
from domain.instruments import HAMD17, INSTRUMENTS, PHQ9, QIDS_SR16, Band, Points

PackKind = Literal["cut_points", "expected_recovery", "safety_item", "overdue"]
KINDS: tuple[PackKind, ...] = ("cut_points", "expected_recovery", "safety_item", "overdue")

# No signal before week 3 (day 21): late responders are not flagged (Schueller et al. 2015 start
# at week 4; ADR 0030). Points dated earlier are never evaluated by any signal pack.
EARLIEST_DAY = 21


@dataclass(frozen=True)
class RulePack:
    """One named, versioned pack of signal rules.

    ``kind`` selects the evaluation (``cut_points``, ``expected_recovery``: on-track signals,
    domain.signals.evaluate; ``safety_item``: an item answer that needs review; ``overdue``: no
    scorable assessment for ``overdue_days`` days). ``params`` is plain JSON data (see
    ``PARAMETERS``); treat it as read-only.
    """

    id: str
    version: str
    kind: PackKind
    title: str
    source: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of kind and parameters: equal rules, equal hash.
        Computed once per pack (a pack's params are read-only): every signal records it."""
        doc = json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True,
                         separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()

    def ref(self) -> dict[str, str]:
        """``{"id", "version", "hash"}``: what every signal and alert records."""
        return {"id": self.id, "version": self.version, "hash": self.hash}

    def label(self) -> str:
        """``"schueller2015-phq9 v1.0.0"``: how explanations name the pack."""
        return f"{self.id} v{self.version}"

    @property
    def instrument(self) -> str | None:
        """The instrument a cut-point or safety-item pack reads (``params["instrument"]``), or
        None for the kinds that read any instrument (expected recovery: the curve's; overdue)."""
        value = self.params.get("instrument")
        return str(value) if value is not None else None

    def describe(self) -> dict[str, Any]:
        """The full definition as JSON data: ref + kind, title, source, params."""
        return {**self.ref(), "kind": self.kind, "title": self.title, "source": self.source,
                "params": copy.deepcopy(dict(self.params))}

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> RulePack:
        """The pack a ``describe()`` document (as stored in an event) describes.

        Raises InvalidRulePackParameterError for an unknown kind."""
        if d["kind"] not in KINDS:
            raise InvalidRulePackParameterError(f"unknown rule pack kind {d['kind']!r}",
                                                field="kind")
        return cls(d["id"], d["version"], d["kind"], d["title"], d["source"],
                   copy.deepcopy(dict(d["params"])))

    def with_params(self, overrides: Mapping[str, Any]) -> RulePack:
        """A variant with ``overrides`` applied: ``{"overdue_days": 21}``, dotted keys for the
        cut-point thresholds (``{"thresholds.9": 12}``: not on track from 12 points at week 9);
        values may be strings (from the CLI).

        Returns ``self`` when nothing is overridden; the variant's id is ``<id>|key=value,...``.
        Raises InvalidRulePackParameterError (``field`` = the key) for an unknown key, a wrong
        type, a value out of its range, or tolerance windows that overlap.
        """
        if not overrides:
            return self
        params = copy.deepcopy(dict(self.params))
        applied = []
        for key in sorted(overrides):
            value = _parse(self, key, overrides[key])
            assign_param(params, key, value)
            applied.append(f"{key}={value}")
        _check_consistency(self.kind, params)
        return RulePack(
            id=f"{self.id}|{','.join(applied)}", version=self.version, kind=self.kind,
            title=f"{self.title} (variant: {', '.join(applied)})", source=self.source,
            params=params,
        )


# --- baseline severity bands (expected recovery) -------------------------------------------------

# HAM-D17 severity (Zimmerman M, Martinez JH, Young D, Chelminski I, Dalrymple K. J Affect Disord
# 2013;150:384-388): 0-7 no depression, 8-16 mild, 17-23 moderate, >= 24 severe.
HAMD17_BANDS = (Band(0, "no depression"), Band(8, "mild"), Band(17, "moderate"),
                Band(24, "severe"))
_BASELINE_BANDS: dict[str, tuple[Band, ...]] = {
    PHQ9.code: PHQ9.bands,            # Kroenke, Spitzer & Williams 2001
    QIDS_SR16.code: QIDS_SR16.bands,  # Rush et al. 2003 (ids-qids.org)
    HAMD17.code: HAMD17_BANDS,        # Zimmerman et al. 2013
}


def _bands_json() -> dict[str, list[dict[str, Any]]]:
    return {code: [{"lower": b.lower, "label": b.label} for b in bands]
            for code, bands in _BASELINE_BANDS.items()}


def baseline_band(pack: RulePack | None, instrument: str, score: Points) -> str:
    """The baseline severity band of ``score`` (points) on ``instrument``: the label of the last
    band whose lower bound (inclusive) it reaches, e.g. PHQ-9 16 -> "moderately severe".

    Bands are ``pack.params["bands"]`` (an expected-recovery pack) or the built-in ones (PHQ-9 and
    QIDS-SR16: domain.instruments; HAM-D17: Zimmerman et al. 2013) when ``pack`` is None.
    Raises ValueError for an instrument without baseline bands.
    """
    table = pack.params["bands"] if pack is not None else _bands_json()
    bands = table.get(instrument)
    if not bands:
        raise ValueError(f"no baseline severity bands for {instrument}")
    label = str(bands[0]["label"])
    for band in bands:
        if score >= band["lower"]:
            label = str(band["label"])
    return label


# --- parameters ----------------------------------------------------------------------------------

def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        value = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            value = int(raw)
        if value is None or not low <= value <= high:
            raise InvalidRulePackParameterError(
                f"{key}: expected a whole number in {low}..{high}, got {raw!r}", field=key)
        return value
    return parse


def _probability(key: str, raw: Any) -> str:
    """A decimal in (0, 1) as its canonical string ("0.8"): the prediction interval's coverage."""
    try:
        value = Decimal(str(raw)) if isinstance(raw, (str, float, int)) else Decimal(-1)
    except InvalidOperation:
        value = Decimal(-1)
    if isinstance(raw, bool) or not value.is_finite() or not 0 < value < 1:
        raise InvalidRulePackParameterError(
            f"{key}: expected a probability in (0, 1) such as 0.8, got {raw!r}", field=key)
    return format(value.normalize(), "f")


PARAMETERS: dict[PackKind, dict[str, Callable[[str, Any], Any]]] = {
    "cut_points": {"tolerance_days": _int_in(0, 14), "thresholds.*": _int_in(0, 60)},
    "expected_recovery": {"probability": _probability, "min_episodes": _int_in(3, 100_000),
                          "earliest_week": _int_in(3, 104)},
    "safety_item": {"positive_from": _int_in(1, 3)},
    "overdue": {"overdue_days": _int_in(1, 365)},
}


def _parse(pack: RulePack, key: str, raw: Any) -> Any:
    pattern = "thresholds.*" if key.startswith("thresholds.") else key
    parser = PARAMETERS[pack.kind].get(pattern)
    if parser is None:
        known = ", ".join(sorted(PARAMETERS[pack.kind]))
        raise InvalidRulePackParameterError(
            f"unknown parameter {key!r} for a {pack.kind} rule pack; known: {known}", field=key)
    if pattern == "thresholds.*" and key.partition(".")[2] not in pack.params["thresholds"]:
        weeks = ", ".join(pack.params["thresholds"])
        raise InvalidRulePackParameterError(
            f"{key}: no decision point at that week; decision points: weeks {weeks}", field=key)
    return parser(key, raw)


def _check_consistency(kind: PackKind, params: Mapping[str, Any]) -> None:
    """Cut points: thresholds within the instrument's range, windows of adjacent decision points
    disjoint (2 * tolerance_days < the days between them)."""
    if kind != "cut_points":
        return
    maximum = INSTRUMENTS[params["instrument"]].total_max
    for week, threshold in params["thresholds"].items():
        if not 0 < threshold <= maximum:
            raise InvalidRulePackParameterError(
                f"thresholds.{week}: expected 1..{maximum} points", field=f"thresholds.{week}")
    weeks = sorted(int(w) for w in params["thresholds"])
    tolerance = params["tolerance_days"]
    for earlier, later in itertools.pairwise(weeks):
        if 2 * tolerance >= 7 * (later - earlier):
            raise InvalidRulePackParameterError(
                f"tolerance_days: {tolerance} days makes the windows of weeks {earlier} and "
                f"{later} overlap", field="tolerance_days")


# --- built-ins -----------------------------------------------------------------------------------

_SCHUELLER = ("Schueller SM, Kwasny MJ, Dear BF, Titov N, Mohr DC. Cut points on the Patient "
              "Health Questionnaire (PHQ-9) that predict response to cognitive-behavioral "
              "treatment for depression. Gen Hosp Psychiatry 2015;37(5):470-475")
_STARD = ("Trivedi MH et al. Am J Psychiatry 2006;163:28-40 (STAR*D level 1); Trivedi MH. "
          "J Clin Psychiatry 2009;70 Suppl 6:26-31 (critical decision points)")
_FINCH = ("Finch AE, Lambert MJ, Schaalje BG. Psychological treatment failure: an expected "
          "treatment response model. Clin Psychol Psychother 2001;8:231-242; baseline bands: "
          "Kroenke 2001 (PHQ-9), Rush 2003 (QIDS-SR16), Zimmerman et al. J Affect Disord "
          "2013;150:384-388 (HAM-D17)")
_KROENKE = ("Kroenke K, Spitzer RL, Williams JBW. J Gen Intern Med 2001;16:606-613 (item 9); "
            "SPEC C4 safety flag")
_OVERDUE = "Outcome Ledger: measurement-based care expects a scorable assessment every 4 weeks"


def _pack(id: str, kind: PackKind, title: str, source: str,
          params: Mapping[str, Any]) -> RulePack:
    _check_consistency(kind, params)
    return RulePack(id=id, version="1.0.0", kind=kind, title=title, source=source, params=params)


BUILTIN_PACKS: dict[str, RulePack] = {p.id: p for p in (
    _pack("schueller2015-phq9", "cut_points",
          "Schueller et al. 2015: PHQ-9 cut points at weeks 4, 9 and 14 that predict non-response",
          _SCHUELLER,
          {"instrument": "PHQ-9", "tolerance_days": 7,
           "thresholds": {"4": 17, "9": 13, "14": 9}}),
    _pack("stard-qids", "cut_points",
          "STAR*D critical decision points: QIDS-SR16 at weeks 4, 6, 9 and 12 (>= 9 non-response)",
          _STARD,
          {"instrument": "QIDS-SR16", "tolerance_days": 3,
           "thresholds": {"4": 9, "6": 9, "9": 9, "12": 9},
           "categories": [{"lower": 0, "label": "remission"},
                          {"lower": 6, "label": "partial response"},
                          {"lower": 9, "label": "non-response"}]}),
    _pack("expected-recovery", "expected_recovery",
          "Expected recovery: the clinic's own curve by baseline severity, 80 % prediction "
          "interval", _FINCH,
          {"probability": "0.8", "min_episodes": 30, "earliest_week": 3,
           "bands": _bands_json()}),
    _pack("phq9-item9", "safety_item",
          "PHQ-9 item 9 (thoughts of death or self-harm) answered 1 or more", _KROENKE,
          {"instrument": "PHQ-9", "item": 9, "positive_from": 1}),
    _pack("overdue", "overdue",
          "Overdue: no scorable assessment for 28 days", _OVERDUE, {"overdue_days": 28}),
)}


def get_rule_pack(pack_id: str) -> RulePack:
    """The built-in pack ``pack_id``, or a variant of one (``overdue|overdue_days=21``).

    Raises UnknownRulePackError for an unknown id, InvalidRulePackParameterError for a bad
    variant parameter.
    """
    base, _, variant = pack_id.partition("|")
    pack = BUILTIN_PACKS.get(base)
    if pack is None:
        raise UnknownRulePackError(
            f"unknown rule pack {base!r}; known: {', '.join(BUILTIN_PACKS)}", field="rule")
    if not variant:
        return pack
    overrides = {}
    for part in variant.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidRulePackParameterError(f"{part!r}: expected key=value", field=part)
        overrides[key] = value
    return pack.with_params(overrides)
