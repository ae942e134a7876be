"""One home for each clinical rule that the read models and the shadow runs share (issue 8).

``current_stage`` (SPEC §2.2-2.3), ``staged_points`` / ``baseline`` (G2 through the fold's own
``day_scores``, G4), ``is_evaluable`` (G5), ``milestones`` (SPEC §2.8 vocabulary; Frank et al.
1991), ``episode_outcome`` (one episode, as every cohort figure counts it) and the figures over a
cohort: ``cohort_figures`` and ``talking_therapies_figures`` (SPEC §2.4, NHS Digital measures
M076, M179/M180, M186, M187, M192, M195, M1010). Every function is pure: the episode summary,
the cohort read model and the shadow run call these and only store what they return.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, TypeVar

from domain.criteria.fold import (
    BASELINE_BELOW,
    RECOVERY,
    RECURRENCE,
    RELAPSE,
    REMISSION,
    RESPONSE,
    SAFETY,
    Observation,
    Point,
    day_scores,
)
from domain.criteria.sets import CriteriaSet

MILESTONES = ("response", "partial_remission", "remission", "recovery", "relapse", "recurrence")
# SPEC §2.4: NHS TT counts a finished course only after >= 2 treatment appointments, the first
# appointment (date) being the assessment (C8): at least 3 distinct dates.
MIN_TREATMENT_APPOINTMENTS = 2


class Staged(Protocol):
    """A stage decision as the stage rules read it (``Episode``'s StageState fits)."""

    @property
    def type(self) -> str: ...

    @property
    def clinical_date(self) -> date: ...

    @property
    def degree(self) -> str | None: ...


StagedT = TypeVar("StagedT", bound=Staged)


@dataclass(frozen=True)
class Decision:
    """A stage decision as recorded or folded: SPEC §2.8 ``type``, its clinical date, ``degree``
    (remission: ``partial``/``full``) and the date of the baseline it was judged against (the
    evidence's ``baseline.date``; None when the decision carries none)."""

    type: str
    clinical_date: date
    degree: str | None = None
    baseline_date: date | None = None

    @classmethod
    def of(cls, type_: str, clinical_date: date, degree: str | None,
           evidence: Mapping[str, Any]) -> Decision:
        """From a decision's fields and evidence (a StageEvent's or a StageDecision's)."""
        baseline = evidence.get("baseline") or {}
        day = baseline.get("date")
        return cls(type_, clinical_date, degree,
                   date.fromisoformat(day) if isinstance(day, str) else None)


def current_stage(stages: Iterable[Staged]) -> str:
    """The stage an episode is in, from its asserted decisions (state machines of SPEC §2.2-2.3).

    One of ``STAGES``: ``episode`` (no decision yet), ``below_threshold``, ``response``,
    ``partial_remission``, ``remission``, ``relapse``, ``recovery``, ``recurrence``. Decisions are
    taken in clinical-date order (G1); response moves the stage only from ``episode`` or
    ``recurrence``: it never outranks a remission. Safety flags (C4) are not stages.
    """
    return stage_and_setter(stages)[0]


def stage_and_setter(stages: Iterable[StagedT]) -> tuple[str, StagedT | None]:
    """``current_stage`` and the decision that set it (None while the stage is ``episode``):
    the one a page says the episode has been in "since"."""
    order = {RESPONSE: 0, REMISSION: 1, RELAPSE: 1, RECOVERY: 1, RECURRENCE: 1, BASELINE_BELOW: 1}
    stage, setter = "episode", None
    ranked = sorted((s for s in stages if s.type != SAFETY),
                    key=lambda s: (s.clinical_date, order[s.type]))
    for s in ranked:
        if s.type == RESPONSE:
            if stage in ("episode", "recurrence"):
                stage, setter = "response", s
        elif s.type == REMISSION:
            stage, setter = ("remission" if s.degree == "full" else "partial_remission"), s
        else:
            stage, setter = {RELAPSE: "relapse", RECOVERY: "recovery", RECURRENCE: "recurrence",
                             BASELINE_BELOW: "below_threshold"}[s.type], s
    return stage, setter


def staged_points(observations: Iterable[Observation], criteria: CriteriaSet,
                  instrument: str) -> list[Point]:
    """The scorable points of the staged ``instrument`` in clinical order, one per day: the
    fold's own timeline (G1, G2; scored under ``criteria``'s missing-item policy, C1-C3)."""
    staged = (o for o in observations if o.instrument == instrument)  # G2 is per instrument
    return [p for p in day_scores(staged, criteria) if p.score.scorable]


def baseline(observations: Iterable[Observation], criteria: CriteriaSet,
             instrument: str) -> Point | None:
    """The episode's baseline: its first scorable assessment of the staged instrument (G4), or
    None when it has none."""
    points = staged_points(observations, criteria, instrument)
    return points[0] if points else None


def is_evaluable(*, longitudinal: bool, has_baseline: bool, decisions: Iterable[Staged]) -> bool:
    """Whether response, remission and recovery are evaluated for an episode (G5): its set
    stages a trajectory (frank/acnp, SPEC §2.2-2.3), it has a baseline (G4) and that baseline
    is not below the episode threshold (no ``BaselineBelowThreshold``)."""
    return longitudinal and has_baseline and not any(d.type == BASELINE_BELOW for d in decisions)


@dataclass(frozen=True)
class Milestones:
    """Which outcome stages an episode's history reached (Frank et al. 1991; SPEC §2.8:
    ``remission`` is full remission), and the days from baseline to the first response and to
    the first full remission (G3 day counts; None when not reached or no baseline date)."""

    response: bool = False
    partial_remission: bool = False
    remission: bool = False
    recovery: bool = False
    relapse: bool = False
    recurrence: bool = False
    days_to_response: int | None = None
    days_to_remission: int | None = None


def milestones(decisions: Iterable[Decision]) -> Milestones:
    """The milestones of a history (first occurrence of each, in clinical-date order)."""
    reached: dict[str, Any] = {}
    for d in sorted(decisions, key=lambda d: d.clinical_date):
        name = _milestone(d)
        if name is None or name in reached:
            continue
        reached[name] = True
        if name in ("response", "remission") and d.baseline_date is not None:
            reached[f"days_to_{name}"] = (d.clinical_date - d.baseline_date).days
    return Milestones(**reached)


def _milestone(d: Decision) -> str | None:
    if d.type == REMISSION:
        return "remission" if d.degree == "full" else "partial_remission"
    return {RESPONSE: "response", RECOVERY: "recovery", RELAPSE: "relapse",
            RECURRENCE: "recurrence"}.get(d.type)


@dataclass(frozen=True)
class EpisodeOutcome(Milestones):
    """One episode as the cohort figures count it: its milestones, ``closed``,
    ``below_threshold`` (G5), ``evaluable`` (see ``is_evaluable``), ``talking_therapies`` (the
    set in force is an NHS Talking Therapies set) and ``course``: the course outcome at
    discharge (SPEC §2.4 object) of a closed NHS TT course, else None."""

    closed: bool = False
    below_threshold: bool = False
    evaluable: bool = False
    talking_therapies: bool = False
    course: Mapping[str, Any] | None = None


def episode_outcome(*, criteria: CriteriaSet, has_baseline: bool, decisions: Sequence[Decision],
                    closed: bool, course: Mapping[str, Any] | None) -> EpisodeOutcome:
    """An episode's outcome under ``criteria``: whether its valid assessments give it a
    ``baseline`` (G4), the decisions its history holds, whether it is closed and its course
    outcome (the Closed event's, or the fold's at discharge)."""
    talking = criteria.kind == "nhstt"
    return EpisodeOutcome(
        **vars(milestones(decisions)),
        closed=closed, below_threshold=any(d.type == BASELINE_BELOW for d in decisions),
        evaluable=is_evaluable(longitudinal=criteria.longitudinal, has_baseline=has_baseline,
                               decisions=decisions),
        talking_therapies=talking,
        course=dict(course) if talking and closed and course is not None else None)


@dataclass(frozen=True)
class Rate:
    """``count`` of ``denominator``; ``percent`` rounded to 0.1, None for an empty denominator."""

    count: int
    denominator: int
    percent: float | None

    @classmethod
    def of(cls, count: int, denominator: int) -> Rate:
        return cls(count, denominator,
                   round(100 * count / denominator, 1) if denominator else None)


@dataclass(frozen=True)
class TalkingTherapiesFigures:
    """NHS Talking Therapies figures over a clinic's finished courses (SPEC §2.4).

    ``finished_courses`` (M076): discharged with >= 2 treatment appointments, whether or not the
    PHQ-9 was paired (such a course is ``eligible: false`` in its outcome, yet NHS Digital's
    denominators have no paired-score condition: it counts as neither improved nor recovered).
    ``case_at_start`` / ``not_case_at_start`` (M179/M180; a course without a paired PHQ-9 is in
    neither). ``recovery`` (M192) and ``reliable_recovery`` (M195) over finished courses minus
    those not at caseness; ``reliable_improvement`` (M186), ``reliable_deterioration`` (M1010)
    and ``no_reliable_change`` (M187) over all finished courses.
    """

    finished_courses: int
    case_at_start: int
    not_case_at_start: int
    recovery: Rate
    reliable_recovery: Rate
    reliable_improvement: Rate
    reliable_deterioration: Rate
    no_reliable_change: Rate


def talking_therapies_figures(courses: Iterable[Mapping[str, Any]]) -> TalkingTherapiesFigures:
    """The figures of SPEC §2.4 over course outcomes at discharge (``nhstt_outcome`` objects)."""
    finished = [c for c in courses
                if c.get("appointments", 0) - 1 >= MIN_TREATMENT_APPOINTMENTS]
    not_case = sum(1 for c in finished if c.get("case_at_start") is False)
    recovery_base, all_base = len(finished) - not_case, len(finished)

    def count(key: str) -> int:
        return sum(1 for c in finished if c.get(key) is True)

    return TalkingTherapiesFigures(
        finished_courses=len(finished), case_at_start=count("case_at_start"),
        not_case_at_start=not_case,
        recovery=Rate.of(count("recovery"), recovery_base),
        reliable_recovery=Rate.of(count("reliable_recovery"), recovery_base),
        reliable_improvement=Rate.of(count("reliable_improvement"), all_base),
        reliable_deterioration=Rate.of(count("reliable_deterioration"), all_base),
        no_reliable_change=Rate.of(count("no_reliable_change"), all_base))


@dataclass(frozen=True)
class CohortFigures:
    """A cohort's figures: ``episodes``, ``closed``, ``below_threshold`` (G5), ``evaluable``;
    ``counts`` and ``rates`` (percent of evaluable episodes, 0.1) of each milestone in
    ``MILESTONES``; median days from baseline to response and to full remission (evaluable
    episodes that reached them); ``talking_therapies``: the SPEC §2.4 figures when any episode
    is under an NHS Talking Therapies set, else None."""

    episodes: int
    closed: int
    below_threshold: int
    evaluable: int
    counts: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)
    median_days_to_response: float | None = None
    median_days_to_remission: float | None = None
    talking_therapies: TalkingTherapiesFigures | None = None


def cohort_figures(outcomes: Iterable[EpisodeOutcome]) -> CohortFigures:
    """The figures of a cohort from its episodes' outcomes (one pass; memory grows only with
    the day counts kept for the medians)."""
    episodes = closed = below = evaluable = 0
    counts = dict.fromkeys(MILESTONES, 0)
    days: dict[str, list[int]] = {"response": [], "remission": []}
    courses: list[Mapping[str, Any]] = []
    talking = False
    for o in outcomes:
        episodes, closed, below = episodes + 1, closed + o.closed, below + o.below_threshold
        talking = talking or o.talking_therapies
        if o.course is not None:
            courses.append(o.course)
        if not o.evaluable:
            continue
        evaluable += 1
        for name in MILESTONES:
            counts[name] += getattr(o, name)
        for name, value in (("response", o.days_to_response),
                            ("remission", o.days_to_remission)):
            if value is not None:
                days[name].append(value)
    return CohortFigures(
        episodes=episodes, closed=closed, below_threshold=below, evaluable=evaluable,
        counts=counts, rates={m: Rate.of(n, evaluable).percent for m, n in counts.items()},
        median_days_to_response=_median(days["response"]),
        median_days_to_remission=_median(days["remission"]),
        talking_therapies=talking_therapies_figures(courses) if talking else None)


def _median(values: list[int]) -> float | None:
    """The median of ``values`` (days) as a float, also for an odd count; None when empty."""
    return float(statistics.median(values)) if values else None
