"""What the staging fold concludes: stage decisions in the output vocabulary of SPEC §2.8.

Every decision is dated at its confirming assessment and names that assessment, the rule, the
evidence and a sentence a clinician can read. The safety decision (C4) is here because every set
emits it, whatever its kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Point

# The output vocabulary of SPEC §2.8 (the names of the Episode's stage events).
RESPONSE = "ResponseReached"
REMISSION = "RemissionReached"
RELAPSE = "RelapseDetected"
RECOVERY = "RecoveryConfirmed"
RECURRENCE = "RecurrenceDetected"
BASELINE_BELOW = "BaselineBelowThreshold"
SAFETY = "SafetyItemPositive"
STAGE_TYPES = (SAFETY, BASELINE_BELOW, RESPONSE, REMISSION, RELAPSE, RECOVERY, RECURRENCE)


@dataclass(frozen=True)
class StageDecision:
    """One derived stage event (SPEC §2.8 vocabulary), dated at its confirming assessment.

    ``onset`` is the start of the qualifying run (remission), ``due_date`` the date recovery became
    possible (ACNP). ``key`` identifies the decision when two folds are compared: a decision whose
    key disappears is retracted, a new key is asserted.
    """

    type: str
    date: date
    assessment_id: str
    rule: str
    explanation: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    degree: str | None = None
    onset: dt.date | None = None
    due_date: dt.date | None = None

    @property
    def key(self) -> tuple[str, str, str | None, str | None, str]:
        onset = self.onset.isoformat() if self.onset else None
        return (self.type, self.date.isoformat(), self.degree, onset, self.assessment_id)

    def as_dict(self) -> dict[str, Any]:
        """JSON form: ``type``, ``date``, ``degree``, ``onset``, ``due_date`` (ISO dates or null),
        ``assessment_id``, ``rule``, ``explanation``, ``evidence``."""
        return {
            "type": self.type, "date": self.date.isoformat(), "degree": self.degree,
            "onset": self.onset.isoformat() if self.onset else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "assessment_id": self.assessment_id, "rule": self.rule,
            "explanation": self.explanation, "evidence": dict(self.evidence),
        }


def under(criteria: CriteriaSet) -> str:
    """"under <id> v<version>": how an explanation names the set that decided."""
    return f"under {criteria.id} v{criteria.version}"


def safety_decision(point: Point) -> StageDecision:
    """``SafetyItemPositive`` for a point whose item 9 is 1 or more (SPEC §1.1, C4): recorded
    under every criteria set, whatever the total, and never a stage of its own."""
    assert point.obs.items is not None
    answer = point.obs.items[8]
    return StageDecision(
        SAFETY, point.on, point.id, "safety.item9 (SPEC §1.1, C4)",
        f"{point.obs.instrument} item 9 (thoughts of death or self-harm) answered {answer} on "
        f"{point.on}: needs clinical review whatever the total (recorded under every criteria set)",
        {"assessments": [point.evidence()], "item9": answer})
