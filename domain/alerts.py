"""Alerts on an episode (ADR 0031): what the episode holds of each alert, the coded vocabulary
of its lifecycle and the pure rules that say when a safety or an overdue alert is due.

An alert is raised (``Episode.AlertRaised``) for a positive PHQ-9 item 9 (``safety``: Kroenke,
Spitzer, Williams 2001; SPEC §1.1, C4), for a not-on-track signal of a watching rule pack
(``off_track``: domain.signals) and for an assessment overdue (``overdue``: no scorable
assessment of the staged instrument for ``overdue_days`` days). It is then acknowledged (who,
when, a coded action and a note) and resolved (who, when, why): open -> acknowledged ->
resolved, or open -> resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.errors import InvalidInputError

SAFETY, OFF_TRACK, OVERDUE = "safety", "off_track", "overdue"
KINDS = (SAFETY, OFF_TRACK, OVERDUE)  # also the order of priority (safety first)
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
# What a clinician did about an alert (AlertAcknowledged.action); "support_review": a clinical
# support checklist (SupportReviewRecorded) in the style of Lambert's Clinical Support Tools.
ACTIONS = ("contacted_patient", "safety_plan_reviewed", "reviewed_in_session",
           "treatment_changed", "referred", "support_review", "other")
# The domains of a support review (Lambert's Clinical Support Tools: therapeutic alliance,
# motivation for change, social support, life events; Whipple et al. 2003, J Couns Psychol
# 50:59-68), each rated 1 (a serious problem in this domain) .. 5 (no concern).
SUPPORT_DOMAINS = ("alliance", "motivation", "social_support", "life_events")
RATING_MIN, RATING_MAX = 1, 5
MAX_TEXT = 2000  # characters of a note or a reason
DEFAULT_OVERDUE_DAYS = 28


@dataclass
class AlertState:
    """An alert as the episode holds it: what was raised (``kind``, ``clinical_date`` = the
    API's ``raised_on``, the ``assessment_id`` it rests on, the pack ``rule`` ref, the
    ``explanation`` and ``evidence``, ``raised_at`` / ``raised_by``) and where it is in its
    lifecycle (``status`` open | acknowledged | resolved, with who, when, the action and note,
    the resolution)."""

    alert_id: str
    kind: str
    clinical_date: date
    assessment_id: str | None
    rule: dict[str, str]
    explanation: str
    evidence: dict[str, Any]
    raised_at: datetime
    raised_by: str
    status: str = OPEN
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    action: str | None = None
    note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def unresolved(self) -> bool:
        return self.status != RESOLVED


def text(value: Any, field: str, *, required: bool) -> str:
    """``value`` as a stripped free text of at most MAX_TEXT characters ("" allowed unless
    ``required``). Raises InvalidInputError naming ``field``."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value.strip()):
        need = "1.." if required else "at most "
        raise InvalidInputError(f"{field} must be {need}{MAX_TEXT} characters", field=field)
    return value.strip()


def action(value: Any) -> str:
    """A coded action of ``ACTIONS``. Raises InvalidInputError (field ``action``)."""
    if value not in ACTIONS:
        raise InvalidInputError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    return str(value)


def support_domains(domains: Any) -> dict[str, dict[str, Any]]:
    """A support review's ratings: exactly the keys of ``SUPPORT_DOMAINS``, each ``{"rating":
    int 1..5, "note": str}`` (note optional, default ""). Returns them normalised (stripped
    notes, keys in ``SUPPORT_DOMAINS`` order). Raises InvalidInputError naming the field."""
    if not isinstance(domains, Mapping) or set(domains) != set(SUPPORT_DOMAINS):
        raise InvalidInputError(
            f"a support review rates exactly {', '.join(SUPPORT_DOMAINS)}", field="domains")
    normalised: dict[str, dict[str, Any]] = {}
    for name in SUPPORT_DOMAINS:
        entry = domains[name]
        rating = entry.get("rating") if isinstance(entry, Mapping) else None
        if (not isinstance(rating, int) or isinstance(rating, bool)
                or not RATING_MIN <= rating <= RATING_MAX):
            raise InvalidInputError(
                f"{name}.rating must be a whole number {RATING_MIN}..{RATING_MAX}",
                field=f"{name}.rating")
        note = text(entry.get("note", ""), f"{name}.note", required=False)
        normalised[name] = {"rating": rating, "note": note}
    return normalised


def overdue_since(last_on: date, today: date, overdue_days: int) -> int | None:
    """Days since ``last_on`` (the latest valid scorable assessment of the staged instrument,
    or the episode's opening) when they reach ``overdue_days`` (an assessment is overdue),
    else None. Raises InvalidInputError for ``overdue_days`` < 1."""
    days = (today - last_on).days
    if days < overdue_days_checked(overdue_days):
        return None
    return days


def overdue_days_checked(overdue_days: object) -> int:
    """``overdue_days`` (days without a scorable assessment before one is overdue) when it is a
    whole number >= 1. Raises InvalidInputError otherwise."""
    if isinstance(overdue_days, bool) or not isinstance(overdue_days, int) or overdue_days < 1:
        raise InvalidInputError("overdue_days must be a whole number >= 1", field="overdue_days")
    return overdue_days
