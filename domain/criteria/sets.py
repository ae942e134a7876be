"""Criteria sets as versioned data: id, semantic version, source, parameters and a content hash.

A criteria set never changes once published: overriding a parameter makes a *variant* with its own
id (``frank1991|rounding=half_up``, the notation of SPEC §2.8). The hash identifies the rules (kind
and parameters), the id names the set: sets with equal rules share a hash (ADR 0003). Decisions
record the id, version and hash that made them, so the history says exactly which rules applied.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, NamedTuple

from domain.errors import InvalidCriteriaParameterError
from domain.instruments import INSTRUMENTS, MISSING_POLICIES, ROUNDINGS

Kind = Literal["frank", "acnp", "nhstt", "cms159"]
LONGITUDINAL: tuple[Kind, ...] = ("frank", "acnp")


class Thresholds(NamedTuple):
    """A staged instrument's zone thresholds in points (C11): full-remission / minimal zone
    s < ``remission_below``; episode, relapse, recurrence and baseline guard s >= ``episode_from``."""

    remission_below: int
    episode_from: int


@dataclass(frozen=True)
class CriteriaSet:
    """One named, versioned set of staging rules.

    ``kind`` selects the fold (``frank``, ``acnp``: longitudinal stages; ``nhstt``: course outcome
    at discharge; ``cms159``: 12-month remission measure). ``params`` is plain JSON data
    (see ``PARAMETERS``); treat it as read-only.
    """

    id: str
    version: str
    kind: Kind
    title: str
    source: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of kind and parameters: equal rules, equal hash."""
        doc = json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True,
                         separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()

    @property
    def longitudinal(self) -> bool:
        return self.kind in LONGITUDINAL

    def ref(self) -> dict[str, str]:
        """``{"id", "version", "hash"}``: what every decision event records."""
        return {"id": self.id, "version": self.version, "hash": self.hash}

    @classmethod
    def from_description(cls, d: Mapping[str, Any]) -> CriteriaSet:
        """The set a ``describe()`` document (as stored in an event) describes."""
        return cls(d["id"], d["version"], d["kind"], d["title"], d["source"], d["params"])

    def describe(self) -> dict[str, Any]:
        """The full definition as JSON data (for listings and for the event that opens an episode)."""
        return {**self.ref(), "kind": self.kind, "title": self.title, "source": self.source,
                "params": copy.deepcopy(dict(self.params))}

    def with_params(self, overrides: Mapping[str, Any]) -> CriteriaSet:
        """A variant with ``overrides`` applied (``{"rounding": "half_up"}``, dotted keys for
        nested values: ``{"thresholds.MADRS.remission_below": "10"}``; values may be strings).

        Returns ``self`` when nothing is overridden. Raises InvalidCriteriaParameterError for an
        unknown key, a wrong type or a value out of its range.
        """
        if not overrides:
            return self
        params = copy.deepcopy(dict(self.params))
        applied = []
        for key in sorted(overrides):
            value = _parse(self.kind, key, overrides[key])
            assign_param(params, key, value)
            applied.append(f"{key}={_render(value)}")
        _check_consistency(self.kind, params)
        return CriteriaSet(
            id=f"{self.id}|{','.join(applied)}", version=self.version, kind=self.kind,
            title=f"{self.title} (variant: {', '.join(applied)})", source=self.source,
            params=params,
        )

    def thresholds(self, instrument: str) -> Thresholds | None:
        """``(remission_below, episode_from)`` in points for a longitudinal set, or None.

        Full-remission / minimal zone: s < remission_below; partial zone: remission_below <= s <
        episode_from; episode, relapse, recurrence and baseline guard: s >= episode_from (C11).
        """
        entry = self.params.get("thresholds", {}).get(instrument)
        if entry is None:
            return None
        return Thresholds(int(entry["remission_below"]), int(entry["episode_from"]))


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _int_in(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        if isinstance(raw, bool):
            raise InvalidCriteriaParameterError(f"{key}: expected a whole number", field=key)
        try:
            value = int(raw) if isinstance(raw, (int, str)) else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise InvalidCriteriaParameterError(
                f"{key}: expected a whole number in {low}..{high}, got {raw!r}", field=key)
        return value
    return parse


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        if raw not in choices:
            raise InvalidCriteriaParameterError(
                f"{key}: expected one of {', '.join(choices)}, got {raw!r}", field=key)
        return str(raw)
    return parse


def _boolean(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise InvalidCriteriaParameterError(f"{key}: expected true or false, got {raw!r}", field=key)


def _fraction(key: str, raw: Any) -> str:
    try:
        value = Fraction(str(raw))
    except (ValueError, ZeroDivisionError):
        value = Fraction(-1)
    if not 0 < value <= 1:
        raise InvalidCriteriaParameterError(
            f"{key}: expected a fraction in (0, 1] such as 1/2, got {raw!r}", field=key)
    return str(value)


_SCORING = {"missing_policy": _choice(*MISSING_POLICIES), "rounding": _choice(*ROUNDINGS)}
_LONGITUDINAL = {
    **_SCORING,
    "max_gap_days": _int_in(1, 365),
    "response_min_fraction": _fraction,
    "thresholds.*.remission_below": _int_in(1, 60),
    "thresholds.*.episode_from": _int_in(1, 60),
}
# Which parameters each kind of set takes, and how a value is read (from JSON or a CLI string).
PARAMETERS: dict[Kind, dict[str, Callable[[str, Any], Any]]] = {
    "frank": {
        **_LONGITUDINAL,
        "partial_remission_min_span_days": _int_in(0, 365),
        "full_remission_min_span_days": _int_in(0, 365),
        "recovery_min_days_from_full_onset": _int_in(0, 3650),
    },
    "acnp": {
        **_LONGITUDINAL,
        "minimal_status": _choice("score", "symptom"),
        "remission_min_span_days": _int_in(0, 365),
        "recovery_min_months_from_remission_onset": _int_in(0, 120),
    },
    "nhstt": {
        **_SCORING,
        "caseness.*": _int_in(1, 60),
        "reliable_change.*": _int_in(1, 60),
        "deterioration_rule": _choice("none_improved", "any"),
        "require_both_measures_paired": _boolean,
    },
    "cms159": {
        **_SCORING,
        "window_rule": _choice("last", "any"),
        "index_above": _int_in(0, 27),
        "remission_below": _int_in(1, 27),
        "window_months": _int_in(1, 60),
        "window_tolerance_days": _int_in(0, 365),
    },
}


def _pattern(key: str) -> str:
    """``thresholds.MADRS.episode_from`` -> ``thresholds.*.episode_from`` (instrument wildcard)."""
    parts = key.split(".")
    if len(parts) >= 2 and parts[1] in INSTRUMENTS:
        parts[1] = "*"
    return ".".join(parts)


def _parse(kind: Kind, key: str, raw: Any) -> Any:
    parser = PARAMETERS[kind].get(_pattern(key))
    if parser is None:
        known = ", ".join(sorted(PARAMETERS[kind]))
        raise InvalidCriteriaParameterError(
            f"unknown parameter {key!r} for a {kind} criteria set; known: {known}", field=key)
    return parser(key, raw)


def assign_param(params: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``thresholds.MADRS.episode_from``) of a parameter document to
    ``value``, creating the nested objects on the way: how a variant's overrides are applied
    (criteria sets here, rule packs in domain.signals.packs)."""
    *path, leaf = key.split(".")
    node = params
    for part in path:
        node = node.setdefault(part, {})
    node[leaf] = value


def _check_consistency(kind: Kind, params: Mapping[str, Any]) -> None:
    for instrument, entry in params.get("thresholds", {}).items():
        if set(entry) != {"remission_below", "episode_from"}:
            raise InvalidCriteriaParameterError(
                f"thresholds.{instrument}: give both remission_below and episode_from",
                field=f"thresholds.{instrument}")
        maximum = INSTRUMENTS[instrument].total_max
        if not entry["remission_below"] < entry["episode_from"] <= maximum:
            raise InvalidCriteriaParameterError(
                f"thresholds.{instrument}: need remission_below < episode_from <= {maximum}",
                field=f"thresholds.{instrument}")


def validate_params(kind: Kind, params: Mapping[str, Any]) -> None:
    """Check a complete parameter document of a ``kind`` set (the built-ins are checked on import).

    Raises InvalidCriteriaParameterError on the first unknown key or bad value.
    """
    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(path + ".", value)
            elif _parse(kind, path, value) != value:
                raise InvalidCriteriaParameterError(f"{path}: not in canonical form", field=path)
    walk("", params)
    _check_consistency(kind, params)
