"""Custom criteria sets: a clinic's variant of a built-in set, registered once and never changed.

Each custom id is an aggregate (``CustomCriteria``) whose events are its versions: registering a
changed definition under the same id appends a new version; registering the same definition
again changes nothing. Every version records who registered it and when, its base set, the
overridden parameters, the source the clinic cites, and the resulting definition and hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.criteria.builtin import BUILTIN
from domain.criteria.sets import CriteriaSet
from domain.errors import InvalidInputError, UnknownCriteriaError

CUSTOM_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{2,63}$")
NAMESPACE = UUID("0b0f3a9e-51d4-5c52-8f5e-6d1c8a3f7b10")


def definition(criteria_id: str, version: str, base: str, params: Mapping[str, Any],
               source: str) -> CriteriaSet:
    """The set ``criteria_id`` v``version``: the built-in ``base`` with ``params`` overridden.

    Raises UnknownCriteriaError (base), InvalidCriteriaParameterError (params) or
    InvalidInputError (id, source).
    """
    if not CUSTOM_ID.match(criteria_id) or criteria_id in BUILTIN:
        raise InvalidInputError(
            "id: 3..64 lower-case letters, digits, '.' or '-', not a built-in set's id",
            field="id")
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError("cite the source of the custom criteria", field="source")
    if base not in BUILTIN:
        raise UnknownCriteriaError(
            f"unknown base set {base!r}; known: {', '.join(BUILTIN)}", field="base")
    variant = BUILTIN[base].with_params(params)
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return CriteriaSet(id=criteria_id, version=version, kind=variant.kind,
                       title=f"{base} with {overrides or 'no change'}", source=source.strip(),
                       params=variant.params)


class CustomCriteria(Aggregate):
    """The versions of one custom criteria set, oldest first."""

    TOPIC = "outcome-ledger:CustomCriteria"

    class Created(Aggregate.Created):  # unused; explicit topics are all-or-nothing
        TOPIC = "outcome-ledger:CustomCriteria.Created"

    class Registered(Aggregate.Created):
        TOPIC = "outcome-ledger:CustomCriteria.Registered"
        criteria_id: str
        base: str
        params: dict[str, Any]
        definition: dict[str, Any]
        recorded_by: str

        def apply(self, aggregate: CustomCriteria) -> None:
            aggregate.versions.append(_version(self))

    class Revised(Aggregate.Event):
        TOPIC = "outcome-ledger:CustomCriteria.Revised"
        base: str
        params: dict[str, Any]
        definition: dict[str, Any]
        recorded_by: str

        def apply(self, aggregate: CustomCriteria) -> None:
            aggregate.versions.append(_version(self))

    def __init__(self, criteria_id: str, base: str, params: dict[str, Any],
                 definition: dict[str, Any], recorded_by: str) -> None:
        self.criteria_id = criteria_id
        self.versions: list[dict[str, Any]] = []

    @staticmethod
    def id_for(criteria_id: str) -> UUID:
        return uuid5(NAMESPACE, f"criteria/{criteria_id}")

    @classmethod
    def register(cls, *, criteria_id: str, base: str, params: Mapping[str, Any], source: str,
                 recorded_by: str) -> CustomCriteria:
        """A new custom set at version 1.0.0 (raises as ``definition``)."""
        made = definition(criteria_id, "1.0.0", base, params, source)
        return cls._create(cls.Registered, id=cls.id_for(criteria_id), criteria_id=criteria_id,
                           base=base, params=dict(params), definition=made.describe(),
                           recorded_by=recorded_by)

    def revise(self, *, base: str, params: Mapping[str, Any], source: str,
               recorded_by: str) -> bool:
        """Append a new major version if the definition (hash or source) changed; False when it
        is the same as the latest version."""
        latest = self.latest()
        made = definition(self.criteria_id, latest.version, base, params, source)
        if made.hash == latest.hash and made.source == latest.source:
            return False
        major = int(latest.version.split(".")[0]) + 1
        made = definition(self.criteria_id, f"{major}.0.0", base, params, source)
        self.trigger_event(self.Revised, base=base, params=dict(params),
                           definition=made.describe(), recorded_by=recorded_by)
        return True

    def latest(self) -> CriteriaSet:
        return CriteriaSet.from_description(self.versions[-1]["definition"])

    def history(self) -> list[dict[str, Any]]:
        """Every version: definition (with id, version, hash), base, params, who and when."""
        return [dict(v) for v in self.versions]


def _version(event: CustomCriteria.Registered | CustomCriteria.Revised) -> dict[str, Any]:
    """A version as listed by ``GET /criteria/{id}``: definition, base, params, who and when."""
    return {"definition": event.definition, "base": event.base, "params": event.params,
            "recorded_by": event.recorded_by, "recorded_at": event.timestamp.isoformat()}
