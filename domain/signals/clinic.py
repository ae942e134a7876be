"""A clinic's choice of the rule packs that watch its episodes, and its recorded recovery fits.

One ``ClinicSignals`` aggregate per clinic (id ``uuid5(NAMESPACE_URL,
"outcome-ledger:clinic-signals:<clinic_id>")``), like a criteria adoption for the clinic: each
``RulePacksChosen`` records the packs (their describe(), so the rules themselves are in the
record) and why; each ``RecoveryCurveFitted`` a fitted expected-recovery model (its describe():
which episodes, when, the parameters and the hash; Finch, Lambert & Schaalje 2001). Without a
choice an episode is watched by the defaults (ADR 0031). Pure domain (ADR 0033).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain import alerts as alerting
from domain.errors import InvalidInputError
from domain.signals.curves import RecoveryCurve
from domain.signals.evaluate import applies
from domain.signals.packs import RulePack


class ClinicSignals(Aggregate):
    """The signal rules one clinic chose, and its fitted recovery curves (latest per
    instrument)."""

    TOPIC = "outcome-ledger:ClinicSignals"

    class Created(Aggregate.Created):
        TOPIC = "outcome-ledger:ClinicSignals.Created"
        clinic_id: str
        recorded_by: str

    class RulePacksChosen(Aggregate.Event):
        TOPIC = "outcome-ledger:ClinicSignals.RulePacksChosen"
        packs: list[dict[str, Any]]
        reason: str
        recorded_by: str

        def apply(self, aggregate: ClinicSignals) -> None:
            aggregate.packs, aggregate.reason = [dict(p) for p in self.packs], self.reason

    class RecoveryCurveFitted(Aggregate.Event):
        TOPIC = "outcome-ledger:ClinicSignals.RecoveryCurveFitted"
        curve: dict[str, Any]
        recorded_by: str

        def apply(self, aggregate: ClinicSignals) -> None:
            aggregate.curves[str(self.curve["instrument"])] = dict(self.curve)

    def __init__(self, clinic_id: str, recorded_by: str) -> None:
        self.clinic_id = clinic_id
        self.packs: list[dict[str, Any]] | None = None  # None: no choice yet (the defaults)
        self.reason: str | None = None
        self.curves: dict[str, dict[str, Any]] = {}  # instrument -> RecoveryCurve.describe()

    @staticmethod
    def id_for(clinic_id: str) -> UUID:
        """The clinic's aggregate id: uuid5(NAMESPACE_URL, "outcome-ledger:clinic-signals:<id>")."""
        return uuid5(NAMESPACE_URL, f"outcome-ledger:clinic-signals:{clinic_id}")

    @classmethod
    def start(cls, *, clinic_id: str, recorded_by: str) -> ClinicSignals:
        """A clinic's record, before its first choice or fit. Raises InvalidInputError for an
        empty or over-long clinic id."""
        if not isinstance(clinic_id, str) or not clinic_id.strip() or len(clinic_id) > 128:
            raise InvalidInputError("clinic_id must be 1..128 characters", field="clinic_id")
        return cls._create(cls.Created, id=cls.id_for(clinic_id), clinic_id=clinic_id,
                           recorded_by=recorded_by)

    def choose(self, *, packs: Sequence[RulePack], reason: str, recorded_by: str) -> bool:
        """Record ``packs`` as the clinic's choice; False when exactly these packs are chosen
        already. Raises InvalidInputError (no pack, a pack named twice, an empty reason)."""
        if not packs:
            raise InvalidInputError("choose at least one rule pack", field="rule")
        if len({p.id for p in packs}) != len(packs):
            raise InvalidInputError("a rule pack is named twice", field="rule")
        why = alerting.text(reason, "reason", required=True)
        described = [p.describe() for p in packs]
        if described == self.packs:
            return False
        self.trigger_event(self.RulePacksChosen, packs=described, reason=why,
                           recorded_by=recorded_by)
        return True

    def record_fit(self, *, curve: RecoveryCurve, recorded_by: str) -> bool:
        """Record a fitted curve of this clinic; False when that very fit (same hash) is the
        latest of its instrument. Raises InvalidInputError for another clinic's curve."""
        if curve.clinic_id != self.clinic_id:
            raise InvalidInputError(f"the curve was fitted for clinic {curve.clinic_id}, not "
                                    f"{self.clinic_id}", field="clinic_id")
        if self.curves.get(curve.instrument, {}).get("hash") == curve.hash:
            return False
        self.trigger_event(self.RecoveryCurveFitted, curve=curve.describe(),
                           recorded_by=recorded_by)
        return True

    def curve(self, instrument: str) -> RecoveryCurve | None:
        """The latest recorded fit for ``instrument``, or None."""
        recorded = self.curves.get(instrument)
        return RecoveryCurve.from_description(recorded) if recorded else None

    def watching(self, instrument: str) -> tuple[list[RulePack], RecoveryCurve | None] | None:
        """What watches an episode staging ``instrument`` under the clinic's choice: the chosen
        packs that apply to it (``applies``) and the latest curve of that instrument when an
        expected-recovery pack is among them; None when the clinic has chosen nothing."""
        if self.packs is None:
            return None
        packs = [p for p in map(RulePack.from_description, self.packs)
                 if applies(p, instrument)]
        curve = self.curve(instrument) if any(
            p.kind == "expected_recovery" for p in packs) else None
        return packs, curve
