"""The longitudinal stage machines: Frank et al. 1991 (SPEC §2.2) and ACNP 2006 (§2.3).

One pass over the staged instrument's scorable day scores, in clinical order: the baseline guard
(G5), response once per episode (G6), runs and their spans (G7, G8, C6), remission, relapse,
recovery and recurrence, with a new episode after a recurrence (C10). Zone thresholds are the
staged instrument's (C11).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, timedelta
from enum import Enum
from fractions import Fraction
from typing import Any

from domain.criteria.decisions import (
    BASELINE_BELOW,
    RECOVERY,
    RECURRENCE,
    RELAPSE,
    REMISSION,
    RESPONSE,
    StageDecision,
    under,
)
from domain.criteria.sets import CriteriaSet, Thresholds
from domain.criteria.timeline import Point, add_months
from domain.instruments import format_points


class Stage(Enum):
    """Where an episode is in its set's state machine; the value is how explanations say it."""

    EPISODE = "episode"
    PARTIAL_REMISSION = "partial remission"  # frank1991
    FULL_REMISSION = "full remission"  # frank1991
    REMISSION = "remission"  # acnp2006 (one degree: full)
    RECOVERED = "recovered"


class Run:
    """A run (G7): consecutive scorable points inside a zone, no gap above max_gap_days."""

    def __init__(self) -> None:
        self.members: list[Point] = []

    def update(self, point: Point, inside: bool) -> None:
        """Extend the run with ``point`` when it is inside the zone, else end the run."""
        if inside:
            self.members.append(point)
        else:
            self.members = []

    def span(self) -> int:
        """Days from the run's onset to its latest member (G8); -1 for an empty run."""
        if not self.members:
            return -1
        return (self.members[-1].on - self.members[0].on).days

    @property
    def onset(self) -> date:
        return self.members[0].on

    def evidence(self) -> list[dict[str, Any]]:
        return [member.evidence() for member in self.members]


@functools.lru_cache(maxsize=64)
def response_fraction(text: str) -> Fraction:
    """The ``response_min_fraction`` parameter ("1/2") as an exact fraction, parsed once per
    distinct value. Raises ValueError for text that is not a fraction."""
    return Fraction(text)


def stage_longitudinal(points: Sequence[Point], criteria: CriteriaSet,
                       instrument: str) -> list[StageDecision]:
    """The stage decisions of a ``frank`` or ``acnp`` set over ``points``: the staged
    instrument's scorable day scores in clinical order (at least one). ``instrument`` must have
    thresholds in the set (``staged_instrument`` checks). Returns decisions in the order made."""
    return LongitudinalStaging(points, criteria, instrument).run()


class LongitudinalStaging:
    """One run of the frank1991 (SPEC §2.2) or acnp2006 (§2.3) state machine, C5-C7, C10-C11."""

    def __init__(self, points: Sequence[Point], criteria: CriteriaSet, instrument: str) -> None:
        thresholds = criteria.thresholds(instrument)
        assert thresholds is not None, "staged_instrument() checks the set has thresholds"
        self.points = points
        self.criteria = criteria
        self.instrument = instrument
        self.thresholds: Thresholds = thresholds
        self.params = criteria.params
        self.response_fraction = response_fraction(self.params["response_min_fraction"])
        self.events: list[StageDecision] = []
        self.baseline = points[0]
        self.stage = Stage.EPISODE
        self.responded = False
        self.below_episode = Run()  # partial-or-full zone: s < episode_from
        self.minimal = Run()  # full-remission zone (frank) / minimal symptom status (acnp)
        self.remission_onset: date | None = None  # onset of the remission recovery counts from

    def run(self) -> list[StageDecision]:
        """Fold every point; returns the decisions in the order they were made."""
        if self.baseline.value < self.thresholds.episode_from:
            self._baseline_below()
            return self.events
        step = self._frank if self.criteria.kind == "frank" else self._acnp
        previous = self.baseline.on
        for point in self.points[1:]:
            if (point.on - previous).days > self.params["max_gap_days"]:
                self._reset_runs()  # C6: a gap resets runs, not an ascribed remission
            previous = point.on
            self._response(point)
            self.below_episode.update(point, point.value < self.thresholds.episode_from)
            self.minimal.update(point, self._is_minimal(point))
            step(point)
        return self.events

    # -- the pieces every set shares -------------------------------------------------------

    def _emit(self, kind: str, point: Point, rule: str, text: str, evidence: dict[str, Any],
              **extra: Any) -> None:
        self.events.append(StageDecision(
            kind, point.on, point.id, rule, f"{text} {under(self.criteria)}",
            {"baseline": self.baseline.evidence(), **evidence}, **extra))

    def _reset_runs(self) -> None:
        self.below_episode, self.minimal = Run(), Run()

    def _baseline_below(self) -> None:
        """G5: a baseline below the episode threshold: one decision and nothing else."""
        baseline = self.baseline
        self.events.append(StageDecision(
            BASELINE_BELOW, baseline.on, baseline.id, "baseline_guard (G5)",
            f"Baseline {self.instrument} {format_points(baseline.value)} on {baseline.on} is "
            f"below the episode threshold of {self.thresholds.episode_from}: response, remission "
            f"and recovery are not evaluated {under(self.criteria)}",
            {"baseline": baseline.evidence()}))

    def _is_minimal(self, point: Point) -> bool:
        """Full-remission zone (frank) / minimal symptom status (acnp; C7 for the symptom rule)."""
        if self.params.get("minimal_status") != "symptom":
            return point.value < self.thresholds.remission_below
        items = point.obs.items
        if items is None or items[0] is None or items[1] is None:
            return False
        if items[0] >= 2 or items[1] >= 2:
            return False
        others = sum(1 for value in items[2:8] if value is not None and value >= 2)
        others += 1 if items[8] is not None and items[8] >= 1 else 0
        return others < 3

    def _response(self, point: Point) -> None:
        """G6: first post-baseline score with (B - s) >= fraction x B, once per episode (C10)."""
        if self.responded:
            return
        baseline, value, fraction = self.baseline.value, point.value, self.response_fraction
        # (B - s) >= (p / q) x B, cross-multiplied: integer arithmetic for whole scores
        if (baseline - value) * fraction.denominator < fraction.numerator * baseline:
            return
        self.responded = True
        drop = round(Fraction(100 * (baseline - value)) / baseline)  # exact, half to even
        self._emit(RESPONSE, point, "response (G6)",
                   f"{self.instrument} fell from {format_points(baseline)} to "
                   f"{format_points(value)} ({drop}% ≥ {round(100 * fraction)}%) on {point.on}: "
                   "response", {"assessments": [self.baseline.evidence(), point.evidence()]})

    def _new_episode(self, point: Point) -> None:
        """A score at the episode threshold: relapse before recovery, recurrence after (C10)."""
        recurrence = self.stage is Stage.RECOVERED
        self._emit(
            RECURRENCE if recurrence else RELAPSE, point,
            f"{self.criteria.kind}.{'recurrence (C10)' if recurrence else 'relapse'}",
            f"{self.instrument} rose to {format_points(point.value)} "
            f"(≥ {self.thresholds.episode_from}) on {point.on} "
            + ("after recovery: recurrence, a new episode with this score as its baseline"
               if recurrence else f"during {self.stage.value}, before recovery: relapse"),
            {"assessments": [point.evidence()]})
        self.stage = Stage.EPISODE
        if recurrence:  # C10: a new episode starts here
            self.baseline, self.responded = point, False

    def _remission(self, point: Point, degree: str, run: Run, required: int, text: str) -> None:
        self._emit(REMISSION, point, f"{self.criteria.kind}.remission.{degree}",
                   f"{self.instrument} {text} from {run.onset} to {point.on} ({run.span()} days "
                   f"≥ {required}): {degree} remission",
                   {"assessments": run.evidence()}, degree=degree, onset=run.onset)

    def _recovery(self, point: Point, rule: str, text: str, evidence: dict[str, Any],
                  due: date) -> None:
        assert self.remission_onset is not None
        self._emit(RECOVERY, point, rule, text,
                   {**evidence, "remission_onset": str(self.remission_onset)}, due_date=due)
        self.stage = Stage.RECOVERED

    # -- frank1991 (SPEC §2.2) -------------------------------------------------------------

    def _frank(self, point: Point) -> None:
        value = point.value
        remission_below = self.thresholds.remission_below
        full_span = self.params["full_remission_min_span_days"]
        partial_span = self.params["partial_remission_min_span_days"]
        if (self.stage in (Stage.PARTIAL_REMISSION, Stage.FULL_REMISSION, Stage.RECOVERED)
                and value >= self.thresholds.episode_from):
            self._new_episode(point)
        elif (self.stage in (Stage.EPISODE, Stage.PARTIAL_REMISSION)
              and self.minimal.span() >= full_span):
            self._remission(point, "full", self.minimal, full_span,
                            f"stayed below {remission_below}")
            self.stage, self.remission_onset = Stage.FULL_REMISSION, self.minimal.onset
        elif self.stage is Stage.EPISODE and self.below_episode.span() >= partial_span:
            self._remission(point, "partial", self.below_episode, partial_span,
                            f"stayed below {self.thresholds.episode_from}")
            self.stage = Stage.PARTIAL_REMISSION
        elif self.stage is Stage.FULL_REMISSION and value >= remission_below:
            self._downgrade(point)
        elif self.stage is Stage.FULL_REMISSION:
            self._frank_recovery(point)

    def _downgrade(self, point: Point) -> None:
        """C5: a score in the partial zone during full remission: partial remission since the
        start of the current run below the episode threshold; the recovery clock restarts."""
        onset = self.below_episode.onset
        self._emit(REMISSION, point, "frank.remission.partial (downgrade, C5)",
                   f"{self.instrument} rose to {format_points(point.value)} on {point.on} during "
                   f"full remission: partial remission since {onset}, recovery clock restarts",
                   {"assessments": self.below_episode.evidence()}, degree="partial", onset=onset)
        self.stage = Stage.PARTIAL_REMISSION

    def _frank_recovery(self, point: Point) -> None:
        assert self.remission_onset is not None
        days = (point.on - self.remission_onset).days
        required = self.params["recovery_min_days_from_full_onset"]
        if days < required:
            return
        self._recovery(
            point, "frank.recovery",
            f"{self.instrument} {format_points(point.value)} on {point.on}, below "
            f"{self.thresholds.remission_below} throughout since full-remission onset "
            f"{self.remission_onset} ({days} days ≥ {required}): recovery",
            {"assessments": self.minimal.evidence()},
            self.remission_onset + timedelta(days=required))

    # -- acnp2006 (SPEC §2.3) --------------------------------------------------------------

    def _acnp(self, point: Point) -> None:
        span = self.params["remission_min_span_days"]
        if self.stage is Stage.EPISODE and self.minimal.span() >= span:
            status = ("stayed at minimal symptom status (items 1 and 2 below 2, fewer than 3 "
                      "other symptoms)" if self.params["minimal_status"] == "symptom"
                      else f"stayed below {self.thresholds.remission_below} (minimal symptoms)")
            self._remission(point, "full", self.minimal, span, status)
            self.stage, self.remission_onset = Stage.REMISSION, self.minimal.onset
        elif (self.stage in (Stage.REMISSION, Stage.RECOVERED)
              and point.value >= self.thresholds.episode_from):
            self._new_episode(point)
            self._reset_runs()
        elif self.stage is Stage.REMISSION:
            self._acnp_recovery(point)

    def _acnp_recovery(self, point: Point) -> None:
        assert self.remission_onset is not None
        months = self.params["recovery_min_months_from_remission_onset"]
        due = add_months(self.remission_onset, months)
        if point.on < due:
            return
        self._recovery(
            point, "acnp.recovery",
            f"{self.instrument} {format_points(point.value)} on {point.on}, at least {months} "
            f"months after remission onset {self.remission_onset} (due {due}) with no relapse: "
            "recovery", {"assessments": [point.evidence()]}, due)
