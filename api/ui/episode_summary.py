"""The one-line plain-language summary that opens the episode page (issue 14), e.g. "PHQ-9 fell
from 18 to 6 over 7 weeks: response on 26 Jan 2026, partial remission since 9 Feb 2026".

A pure function of the staged instrument's valid scores (clinical order) and the asserted stage
decisions; the wording is tested in tests/ui/test_episode_summary.py. The stage of each decision
follows ``domain.rules.current_stage`` (SPEC §2.2-2.3): the decision that moved the episode into
its current stage reads "since", the earlier ones "on"; safety flags (C4) are not stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from api.ui.dates import MONTHS
from domain.criteria.decisions import (
    BASELINE_BELOW,
    RECOVERY,
    RECURRENCE,
    RELAPSE,
    REMISSION,
    RESPONSE,
    SAFETY,
)
from domain.rules import stage_and_setter


@dataclass(frozen=True)
class Score:
    """A valid (not voided, scorable) total in points at its clinical date."""

    on: date
    total: float


@dataclass(frozen=True)
class Decision:
    """An asserted stage decision: SPEC §2.8 ``type`` (``ResponseReached`` ...), its clinical
    date and ``degree`` (remission: ``partial`` / ``full``)."""

    type: str
    on: date
    degree: str | None = None

    @property
    def clinical_date(self) -> date:
        """``on``, by the name the domain's stage rules read (``domain.rules.Staged``)."""
        return self.on


def day(value: date | str) -> str:
    """``date(2026, 1, 26)`` (or "2026-01-26") -> "26 Jan 2026" (English month abbreviations,
    whatever the locale). Raises ValueError for a string that is not an ISO date."""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def points(value: float) -> str:
    """A total in points as the page writes it: 18, 4.5 (never "18.0")."""
    return f"{value:g}"


def stage_label(kind: str, degree: str | None = None) -> str | None:
    """The stage a decision of SPEC §2.8 type ``kind`` names ("response", "partial
    remission", "full remission", ...), or None for a safety flag (not a stage)."""
    if kind == REMISSION:
        return "full remission" if degree == "full" else "partial remission"
    return {RESPONSE: "response", RELAPSE: "relapse", RECOVERY: "recovery",
            RECURRENCE: "recurrence", BASELINE_BELOW: "baseline below threshold"}.get(kind)


def _span(start: date, end: date) -> str:
    days = (end - start).days
    weeks = round(days / 7)
    if weeks == 0:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{weeks} week{'s' if weeks != 1 else ''}"


def summary(instrument: str, scores: Sequence[Score], decisions: Sequence[Decision]) -> str:
    """The sentence: the change from the baseline (first of ``scores``) to the latest valid
    score, over whole weeks (days when under half a week), then each stage decision's stage
    and date in clinical order ("since" for the one that set the current stage).

    ``scores``: the staged instrument's valid totals in clinical order; ``decisions``: the
    asserted (not retracted) decisions in any order; safety flags are left out."""
    if not scores:
        head = f"No {instrument} score recorded yet"
    elif len(scores) == 1:
        head = f"{instrument} {points(scores[0].total)} on {day(scores[0].on)}, the only score so far"
    else:
        first, last = scores[0], scores[-1]
        span = _span(first.on, last.on)
        if last.total < first.total:
            head = f"{instrument} fell from {points(first.total)} to {points(last.total)} over {span}"
        elif last.total > first.total:
            head = f"{instrument} rose from {points(first.total)} to {points(last.total)} over {span}"
        else:
            head = f"{instrument} unchanged at {points(first.total)} over {span}"
    staged = sorted((d for d in decisions if d.type != SAFETY), key=lambda d: d.on)
    if not staged:
        return f"{head}: no stage decision yet" if scores else head
    # "since" on the decision that set the current stage, by the domain's own stage rule
    setter = stage_and_setter(staged)[1]
    parts = [f"{stage_label(d.type, d.degree)} {'since' if d is setter else 'on'} {day(d.on)}"
             for d in staged]
    return f"{head}: {', '.join(parts)}"
