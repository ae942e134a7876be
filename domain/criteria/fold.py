"""The staging fold: a pure function from an episode's assessments and a criteria set to decisions.

``fold(observations, criteria)`` orders the assessments by clinical date (G1), keeps the latest
record per instrument and day (G2), scores them under the set's missing-item policy and rounding
(C1-C3), and runs the set's rules: Frank et al. 1991 (SPEC §2.2), ACNP 2006 (§2.3), NHS Talking
Therapies (§2.4) or CMS159 (§2.5). The same input always gives the same output, whatever order the
rows arrive in. Every decision names its confirming assessment, the evidence, the rule and a
sentence a clinician can read.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from domain.criteria.sets import CriteriaSet
from domain.errors import UnstageableInstrumentError
from domain.instruments import (
    SAFETY_ITEM9_POSITIVE,
    Score,
    format_points,
    get_instrument,
    points,
    score,
)

# The output vocabulary of SPEC §2.8.
RESPONSE = "ResponseReached"
REMISSION = "RemissionReached"
RELAPSE = "RelapseDetected"
RECOVERY = "RecoveryConfirmed"
RECURRENCE = "RecurrenceDetected"
BASELINE_BELOW = "BaselineBelowThreshold"
SAFETY = "SafetyItemPositive"
STAGE_TYPES = (SAFETY, BASELINE_BELOW, RESPONSE, REMISSION, RELAPSE, RECOVERY, RECURRENCE)


@dataclass(frozen=True)
class Observation:
    """One recorded assessment as the fold sees it.

    ``on`` is the clinical (local calendar) date; ``items`` one entry per item (None = missing);
    ``total`` the reported total in points; ``recorded_at`` (timezone-aware) orders same-day
    amendments (G2). ``assessment_id`` is unique within the episode.
    """

    assessment_id: str
    instrument: str
    on: date
    items: tuple[int | None, ...] | None = None
    total: int | None = None
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class Point:
    """A scored observation."""

    obs: Observation
    score: Score

    @property
    def on(self) -> date:
        return self.obs.on

    @property
    def id(self) -> str:
        return self.obs.assessment_id

    @property
    def value(self) -> Fraction:
        assert self.score.value is not None, "only scorable points are staged"
        return self.score.value

    def evidence(self) -> dict[str, Any]:
        return {"assessment_id": self.id, "date": self.on.isoformat(),
                "instrument": self.obs.instrument, "score": points(self.score.value)}


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


@dataclass(frozen=True)
class FoldResult:
    """What a criteria set concludes from an episode: stage decisions in date order, and for the
    course-level sets (NHS TT, CMS159) the outcome object; ``scores`` maps assessment id to its
    score under the set's scoring policy."""

    criteria: CriteriaSet
    events: tuple[StageDecision, ...]
    outcome: Mapping[str, Any] | None
    scores: Mapping[str, Score]


def add_months(day: date, months: int) -> date:
    """Calendar-month addition, clamped to the month's end (G3): 2026-01-31 + 1 -> 2026-02-28."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def staged_instrument(criteria: CriteriaSet, instrument: str) -> str:
    """The instrument a longitudinal set stages for a trajectory of ``instrument`` (C12).

    GAD-7 trajectories stage their PHQ-9 rows; other instruments need thresholds in the set (C11).
    Raises UnknownInstrumentError or UnstageableInstrumentError.
    """
    get_instrument(instrument)
    staged = "PHQ-9" if instrument == "GAD-7" else instrument
    if not criteria.longitudinal:
        return staged
    if criteria.thresholds(staged) is None:
        raise UnstageableInstrumentError(
            f"{criteria.id} has no thresholds for {staged}; give thresholds.{staged}."
            f"remission_below and thresholds.{staged}.episode_from", field="instrument")
    if criteria.params.get("minimal_status") == "symptom" and staged != "PHQ-9":
        raise UnstageableInstrumentError(
            f"{criteria.id} needs PHQ-9 item scores; it cannot stage {staged}", field="instrument")
    return staged


def score_observation(obs: Observation, criteria: CriteriaSet) -> Score:
    """Score ``obs`` under the set's missing-item policy and rounding (validates; see score())."""
    return score(get_instrument(obs.instrument), obs.items, obs.total,
                 missing_policy=criteria.params["missing_policy"],
                 rounding=criteria.params["rounding"])


def _amendment_order(obs: Observation) -> tuple[bool, datetime, str]:
    return (obs.recorded_at is not None, obs.recorded_at or datetime.min, obs.assessment_id)


def timeline(observations: Iterable[Observation], criteria: CriteriaSet) -> list[Point]:
    """Scored points in clinical-date order, one per instrument and day: the latest record (G2)."""
    latest: dict[tuple[str, date], Observation] = {}
    for obs in observations:
        slot = (obs.instrument, obs.on)
        if slot not in latest or _amendment_order(obs) > _amendment_order(latest[slot]):
            latest[slot] = obs
    kept = sorted(latest.values(), key=lambda o: (o.on, o.instrument, o.assessment_id))
    return [Point(o, score_observation(o, criteria)) for o in kept]


def fold(
    observations: Iterable[Observation],
    criteria: CriteriaSet,
    *,
    instrument: str = "PHQ-9",
    discharge: date | None = None,
) -> FoldResult:
    """Derive the stage decisions of ``criteria`` from an episode's valid assessments.

    ``instrument`` is the trajectory's (staged) instrument; ``discharge`` ends an NHS TT course
    (default: the last assessment's date). Returns a FoldResult. Raises the validation errors of
    score() for a malformed assessment, UnknownInstrumentError or UnstageableInstrumentError.
    """
    observations = list(observations)
    staged = staged_instrument(criteria, instrument)
    scored = timeline(observations, criteria)
    scores = {p.id: p.score for p in scored}
    for obs in observations:  # records superseded by a same-day amendment (G2)
        if obs.assessment_id not in scores:
            scores[obs.assessment_id] = score_observation(obs, criteria)
    events = [_safety(p, criteria) for p in scored if SAFETY_ITEM9_POSITIVE in p.score.flags]
    outcome: dict[str, Any] | None = None
    if criteria.kind == "nhstt":
        outcome = nhstt_outcome(scored, criteria, discharge)
    elif criteria.kind == "cms159":
        outcome = cms159_outcome(scored, criteria)
    else:
        staged_points = [p for p in scored if p.obs.instrument == staged and p.score.scorable]
        if staged_points:
            events += _Staging(staged_points, criteria, staged).run()
    order = {t: i for i, t in enumerate(STAGE_TYPES)}
    events.sort(key=lambda e: (e.date, order[e.type], e.degree or ""))
    return FoldResult(criteria, tuple(events), outcome, scores)


def _under(criteria: CriteriaSet) -> str:
    return f"under {criteria.id} v{criteria.version}"


def _safety(p: Point, criteria: CriteriaSet) -> StageDecision:
    assert p.obs.items is not None
    answer = p.obs.items[8]
    return StageDecision(
        SAFETY, p.on, p.id, "safety.item9 (SPEC §1.1, C4)",
        f"{p.obs.instrument} item 9 (thoughts of death or self-harm) answered {answer} on {p.on}: "
        "needs clinical review whatever the total (recorded under every criteria set)",
        {"assessments": [p.evidence()], "item9": answer})


class _Run:
    """A run (G7): consecutive scorable points inside a zone, no gap above max_gap_days."""

    def __init__(self) -> None:
        self.members: list[Point] = []

    def update(self, point: Point, inside: bool) -> None:
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
        return [m.evidence() for m in self.members]


class _Staging:
    """The longitudinal state machines of frank1991 (SPEC §2.2) and acnp2006 (§2.3), C10-C11."""

    def __init__(self, points: Sequence[Point], criteria: CriteriaSet, instrument: str) -> None:
        self.points, self.cs, self.inst = points, criteria, instrument
        thresholds = criteria.thresholds(instrument)
        assert thresholds is not None
        self.rem, self.ep = thresholds
        self.p = criteria.params
        self.fraction = Fraction(self.p["response_min_fraction"])
        self.events: list[StageDecision] = []

    def emit(self, kind: str, point: Point, rule: str, text: str, evidence: dict[str, Any],
             **extra: Any) -> None:
        self.events.append(StageDecision(
            kind, point.on, point.id, rule, f"{text} {_under(self.cs)}",
            {"baseline": self.baseline.evidence(), **evidence}, **extra))

    def run(self) -> list[StageDecision]:
        self.baseline = self.points[0]
        if self.baseline.value < self.ep:
            b = self.baseline
            self.events.append(StageDecision(
                BASELINE_BELOW, b.on, b.id, "baseline_guard (G5)",
                f"Baseline {self.inst} {format_points(b.value)} on {b.on} is below the episode "
                f"threshold of {self.ep}: response, remission and recovery are not evaluated "
                f"{_under(self.cs)}", {"baseline": b.evidence()}))
            return self.events
        step = self._frank if self.cs.kind == "frank" else self._acnp
        self.state, self.responded = "EPISODE", False
        self.runs = (_Run(), _Run())  # (partial-or-full zone, full/minimal zone)
        previous = self.baseline.on
        for point in self.points[1:]:
            if (point.on - previous).days > self.p["max_gap_days"]:
                self.runs = (_Run(), _Run())  # C6: a gap resets runs, not an ascribed remission
            previous = point.on
            self._response(point)
            self.runs[0].update(point, point.value < self.ep)
            self.runs[1].update(point, self._minimal(point))
            step(point)
        return self.events

    def _minimal(self, point: Point) -> bool:
        """Full-remission zone (frank) / minimal symptom status (acnp; C7 for the symptom rule)."""
        if self.p.get("minimal_status") != "symptom":
            return point.value < self.rem
        items = point.obs.items
        if items is None or items[0] is None or items[1] is None:
            return False
        if items[0] >= 2 or items[1] >= 2:
            return False
        others = sum(1 for v in items[2:8] if v is not None and v >= 2)
        others += 1 if items[8] is not None and items[8] >= 1 else 0
        return others < 3

    def _response(self, point: Point) -> None:
        """G6: first post-baseline score with (B - s) >= fraction x B, once per episode (C10)."""
        if self.responded:
            return
        b, s, fraction = self.baseline.value, point.value, self.fraction
        if b - s < fraction * b:
            return
        self.responded = True
        drop = round(100 * (b - s) / b)
        self.emit(RESPONSE, point, "response (G6)",
                  f"{self.inst} fell from {format_points(b)} to {format_points(s)} "
                  f"({drop}% ≥ {round(100 * fraction)}%) on {point.on}: response",
                  {"assessments": [self.baseline.evidence(), point.evidence()]})

    def _new_episode(self, point: Point, state_name: str) -> None:
        self.emit(RECURRENCE if state_name == "RECOVERED" else RELAPSE, point,
                  f"{self.cs.kind}.{'recurrence (C10)' if state_name == 'RECOVERED' else 'relapse'}",
                  f"{self.inst} rose to {format_points(point.value)} (≥ {self.ep}) on {point.on} "
                  + ("after recovery: recurrence, a new episode with this score as its baseline"
                     if state_name == "RECOVERED" else
                     f"during {state_name.lower().replace('_', ' ')}, before recovery: relapse"),
                  {"assessments": [point.evidence()]})
        self.state = "EPISODE"
        if state_name == "RECOVERED":  # C10: a new episode starts here
            self.baseline, self.responded = point, False

    def _remission(self, point: Point, degree: str, run: _Run, required: int, text: str) -> None:
        self.emit(REMISSION, point, f"{self.cs.kind}.remission.{degree}",
                  f"{self.inst} {text} from {run.onset} to {point.on} ({run.span()} days ≥ "
                  f"{required}): {degree} remission",
                  {"assessments": run.evidence()}, degree=degree, onset=run.onset)

    def _frank(self, point: Point) -> None:
        partial, full = self.runs
        s = point.value
        full_span, partial_span = (self.p["full_remission_min_span_days"],
                                   self.p["partial_remission_min_span_days"])
        if self.state in ("PARTIAL_REMISSION", "FULL_REMISSION", "RECOVERED") and s >= self.ep:
            self._new_episode(point, self.state)
        elif self.state in ("EPISODE", "PARTIAL_REMISSION") and full.span() >= full_span:
            self._remission(point, "full", full, full_span, f"stayed below {self.rem}")
            self.state, self.full_onset = "FULL_REMISSION", full.onset
        elif self.state == "EPISODE" and partial.span() >= partial_span:
            self._remission(point, "partial", partial, partial_span, f"stayed below {self.ep}")
            self.state = "PARTIAL_REMISSION"
        elif self.state == "FULL_REMISSION" and s >= self.rem:
            self.emit(REMISSION, point, "frank.remission.partial (downgrade, C5)",
                      f"{self.inst} rose to {format_points(s)} on {point.on} during full "
                      f"remission: partial remission since {partial.onset}, recovery clock "
                      "restarts", {"assessments": partial.evidence()},
                      degree="partial", onset=partial.onset)
            self.state = "PARTIAL_REMISSION"
        elif self.state == "FULL_REMISSION":
            days = (point.on - self.full_onset).days
            required = self.p["recovery_min_days_from_full_onset"]
            if days >= required:
                self.emit(RECOVERY, point, "frank.recovery",
                          f"{self.inst} {format_points(s)} on {point.on}, below {self.rem} "
                          f"throughout since full-remission onset {self.full_onset} ({days} days "
                          f"≥ {required}): recovery",
                          {"assessments": full.evidence(), "remission_onset": str(self.full_onset)},
                          due_date=self.full_onset + timedelta(days=required))
                self.state = "RECOVERED"

    def _acnp(self, point: Point) -> None:
        run = self.runs[1]
        s = point.value
        span = self.p["remission_min_span_days"]
        if self.state == "EPISODE" and run.span() >= span:
            status = ("stayed at minimal symptom status (items 1 and 2 below 2, fewer than 3 "
                      "other symptoms)" if self.p["minimal_status"] == "symptom"
                      else f"stayed below {self.rem} (minimal symptoms)")
            self._remission(point, "full", run, span, status)
            self.state, self.onset = "REMISSION", run.onset
        elif self.state in ("REMISSION", "RECOVERED") and s >= self.ep:
            self._new_episode(point, self.state)
            self.runs = (_Run(), _Run())
        elif self.state == "REMISSION":
            months = self.p["recovery_min_months_from_remission_onset"]
            due = add_months(self.onset, months)
            if point.on >= due:
                self.emit(RECOVERY, point, "acnp.recovery",
                          f"{self.inst} {format_points(s)} on {point.on}, at least {months} "
                          f"months after remission onset {self.onset} (due {due}) with no "
                          "relapse: recovery",
                          {"assessments": [point.evidence()], "remission_onset": str(self.onset)},
                          due_date=due)
                self.state = "RECOVERED"


def _measure(points: Sequence[Point], code: str) -> tuple[Point, Point] | None:
    """First and last scorable scores of a measure, if it is paired (>= 2 distinct dates, C8)."""
    scored = [p for p in points if p.obs.instrument == code and p.score.scorable]
    if len({p.on for p in scored}) < 2:
        return None
    return scored[0], scored[-1]


def nhstt_outcome(scored: Sequence[Point], criteria: CriteriaSet,
                  discharge: date | None) -> dict[str, Any]:
    """NHS Talking Therapies course outcome at discharge (SPEC §2.4, C8).

    Returns ``eligible``, ``case_at_start``, ``recovery``, ``reliable_improvement``,
    ``reliable_deterioration``, ``reliable_recovery``, ``no_reliable_change`` (bool, or null where
    the measure's denominator excludes the course), plus ``discharge``, ``appointments``,
    ``measures`` (first, last, change in points), ``tags`` and, when ineligible, ``reason``.
    """
    p = criteria.params
    if discharge is None and scored:
        discharge = max(pt.on for pt in scored)
    course = [pt for pt in scored if discharge is None or pt.on <= discharge]
    dates = sorted({pt.on for pt in course})
    paired = {code: _measure(course, code) for code in ("PHQ-9", "GAD-7")}
    result: dict[str, Any] = {
        "eligible": False, "case_at_start": None, "recovery": None,
        "reliable_improvement": None, "reliable_deterioration": None,
        "reliable_recovery": None, "no_reliable_change": None,
        "discharge": discharge.isoformat() if discharge else None,
        "appointments": len(dates), "measures": {}, "tags": [],
    }
    for code, pair in paired.items():
        if pair:
            first, last = pair
            result["measures"][code] = {
                "first": first.evidence(), "last": last.evidence(),
                "change": points(last.value - first.value)}
    if len(dates) - 1 < 2 or paired["PHQ-9"] is None:
        result["reason"] = ("fewer than 2 treatment appointments" if len(dates) - 1 < 2
                            else "PHQ-9 not paired (scorable on fewer than 2 dates)")
        return result
    measures = {code: pair for code, pair in paired.items() if pair}
    if "GAD-7" not in measures:
        result["tags"].append("anxiety_measure_absent")
    caseness, rci = p["caseness"], p["reliable_change"]
    case = any(first.value >= caseness[c] for c, (first, _) in measures.items())
    improved = [c for c, (f, last) in measures.items() if f.value - last.value >= rci[c]]
    worse = [c for c, (f, last) in measures.items() if last.value - f.value >= rci[c]]
    ri = bool(improved) and not worse
    rd = bool(worse) and (p["deterioration_rule"] == "any" or not improved)
    recovery: bool | None = None
    if case:
        below = all(last.value < caseness[c] for c, (_, last) in measures.items())
        recovery = below and ("GAD-7" in measures or not p["require_both_measures_paired"])
    result.update({
        "eligible": True, "case_at_start": case, "recovery": recovery,
        "reliable_improvement": ri, "reliable_deterioration": rd,
        "reliable_recovery": None if recovery is None else recovery and ri,
        "no_reliable_change": not ri and not rd,
    })
    return result


def cms159_outcome(scored: Sequence[Point], criteria: CriteriaSet) -> dict[str, Any]:
    """CMS159 Depression Remission at Twelve Months (SPEC §2.5, C9).

    Index = first scorable PHQ-9 above ``index_above``; window = index + 12 calendar months
    ± 60 days (closed, in days); met = the last PHQ-9 after the index inside the window is below
    ``remission_below`` (``window_rule=any``: any such score). Returns ``met`` (bool),
    ``in_denominator``, ``index``, ``window`` and ``measure_assessment``.
    """
    p = criteria.params
    phq = [pt for pt in scored if pt.obs.instrument == "PHQ-9" and pt.score.scorable]
    index = next((pt for pt in phq if pt.value > p["index_above"]), None)
    if index is None:
        return {"met": False, "in_denominator": False, "index": None, "window": None,
                "measure_assessment": None,
                "reason": f"no PHQ-9 above {p['index_above']} to index the measure"}
    anchor = add_months(index.on, p["window_months"])
    start = anchor - timedelta(days=p["window_tolerance_days"])
    end = anchor + timedelta(days=p["window_tolerance_days"])
    window = [pt for pt in phq if pt.on > index.on and start <= pt.on <= end]
    below = [pt for pt in window if pt.value < p["remission_below"]]
    if p["window_rule"] == "any":
        chosen = below[-1] if below else (window[-1] if window else None)
        met = bool(below)
    else:
        chosen = window[-1] if window else None
        met = chosen is not None and chosen.value < p["remission_below"]
    return {"met": met, "in_denominator": True, "index": index.evidence(),
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "measure_assessment": chosen.evidence() if chosen else None}
