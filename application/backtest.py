"""Back-testing a rule pack by replay: how well "not on track" at a decision point predicted no
response (or no remission) at discharge, over a clinic's closed episodes (ADR 0033).

Each closed episode is replayed as of each decision point: ``current_signal`` sees only the
points dated up to that point's window (nothing later, nothing after discharge). Its outcome at
discharge is judged on its last valid staged score: response = at most 50 % of the baseline (a
reduction of >= 50 %; Schueller et al. 2015), remission = below the criteria set's
``remission_below`` threshold (``CriteriaSet.thresholds``). "Positive" is the prediction "not on
track"; the event it predicts is "no response" (or "no remission"): TP = not on track and not
responded, FP = not on track and responded, TN = on track and responded, FN = on track and not
responded.

Decision points: a cut-point pack's own weeks, each as of day 7w + its tolerance (the window's
last day); expected recovery at weeks 3, 4, 6, 8 and 12, each as of day 7w + 3 on the latest
point dated within 3 days of day 7w (the rows where no episode has such a point are left out: the
weeks the data have). An episode is evaluated at a decision point only when it has a valid staged
score dated after that point's as-of day: otherwise the score the prediction rests on could be
the very score the outcome is judged on (circular); such episodes are counted as "no later
score", not evaluated. Expected-recovery curves
are fitted and tested on different episodes: 5-fold cross-validation by patient (seeded: one
patient's episodes share a fold, so a patient's own trajectory never trains the curve that judges
them), each fold judged with the curve fitted on the other four.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

from application.outcomes import OutcomesApplication
from application.recovery_fit import EpisodeSeries, fit_recovery_curve
from domain.criteria.timeline import Point
from domain.episode import Episode
from domain.signals.curves import RecoveryCurve
from domain.signals.evaluate import applies, current_signal
from domain.signals.packs import RulePack

Outcome = Literal["response", "remission"]
RECOVERY_WEEKS = (3, 4, 6, 8, 12)
RECOVERY_TOLERANCE_DAYS = 3  # half a week: the windows of weeks 3 and 4 stay apart
FOLDS, SEED = 5, 20010231  # Finch, Lambert & Schaalje 2001, 8:231


class NothingToBacktestError(Exception):
    """The rule applies to none of the clinic's closed episodes (the CLI exits 1)."""


@dataclass(frozen=True)
class DecisionPointFigures:
    """One decision point's replay: episodes ``evaluated`` (a signal on track or not, and an
    outcome judged on a later score), ``not_on_track`` among them, ``insufficient`` (no curve
    for the band: not evaluated), ``no_later_score`` (a signal at this decision point but no
    score after its as-of day: not evaluated, the outcome would not come later than the
    prediction), the 2x2 counts and the ratios (None when their denominator is 0)."""

    instrument: str
    decision_point: str
    evaluated: int
    not_on_track: int
    insufficient: int
    tp: int
    fp: int
    tn: int
    fn: int
    no_later_score: int = 0

    @property
    def sensitivity(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def ppv(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fn)

    def as_json(self) -> dict[str, object]:
        return {"instrument": self.instrument, "decision_point": self.decision_point,
                "evaluated": self.evaluated, "not_on_track": self.not_on_track,
                "insufficient": self.insufficient,
                "no_later_score": self.no_later_score, "tp": self.tp, "fp": self.fp,
                "tn": self.tn, "fn": self.fn, "sensitivity": _round(self.sensitivity),
                "specificity": _round(self.specificity), "ppv": _round(self.ppv),
                "npv": _round(self.npv)}


@dataclass(frozen=True)
class Backtest:
    """A back-test's result: the pack's ref, the clinic, the outcome predicted against, the
    closed episodes the pack applies to (``episodes``), those left out and why (``excluded``),
    how the figures were obtained (``method``) and one row per decision point."""

    rule: dict[str, str]
    clinic_id: str
    outcome: Outcome
    episodes: int
    excluded: dict[str, int]
    method: str
    rows: tuple[DecisionPointFigures, ...]
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "clinic_id": self.clinic_id, "outcome": self.outcome,
                "episodes": self.episodes, "excluded": self.excluded, "method": self.method,
                "notes": list(self.notes), "decision_points": [r.as_json() for r in self.rows]}


def closed_series(app: OutcomesApplication, clinic_id: str) -> list[EpisodeSeries]:
    """The closed episodes of ``clinic_id`` as series (erased episodes are left out), in id
    order. Reads every Closed event's episode once."""
    ids = sorted({UUID(str(n.originator_id)) for n in app.notifications(Episode.Closed.TOPIC)},
                 key=str)
    return [EpisodeSeries.of(app.get_episode(i)) for i in ids if app.clinic_of(i) == clinic_id]


def outcome_reached(series: EpisodeSeries, outcome: Outcome) -> bool | None:
    """Whether the episode reached ``outcome`` at discharge, on its last valid staged score:
    response = last <= 50 % of the baseline (Schueller et al. 2015), remission = last <
    ``remission_below``. None when it cannot be judged: no score after the baseline, or (for
    remission) a criteria set without thresholds."""
    if len(series.points) < 2:
        return None
    baseline, last = series.points[0].value, series.points[-1].value
    if outcome == "response":
        return bool(2 * last <= baseline)
    if series.remission_below is None:
        return None
    return bool(last < series.remission_below)


def backtest(pack: RulePack, clinic_id: str, episodes: Sequence[EpisodeSeries], *,
             outcome: Outcome = "response", now: datetime | None = None,
             seed: int = SEED) -> Backtest:
    """Replay ``pack`` over ``episodes`` (the clinic's closed ones) and count, per decision
    point, its predictions against the outcome at discharge (see the module's docstring).
    ``now`` (aware) stamps the cross-validation's fits. Raises NothingToBacktestError when the
    pack applies to none of the episodes, ValueError for a pack that gives no on-track signal
    (safety_item, overdue)."""
    if pack.kind not in ("cut_points", "expected_recovery"):
        raise ValueError(f"{pack.id} is a {pack.kind} pack: it gives no on-track signal to test")
    applicable = [e for e in episodes if e.closed_on is not None and applies(pack, e.instrument)]
    if not applicable:
        raise NothingToBacktestError(
            f"{pack.id} applies to none of clinic {clinic_id}'s {len(episodes)} closed episodes "
            f"(instruments: {', '.join(sorted({e.instrument for e in episodes})) or 'none'})")
    excluded: Counter[str] = Counter()
    judged: list[tuple[EpisodeSeries, bool]] = []
    for series in applicable:
        reached = outcome_reached(series, outcome)
        if reached is None:
            excluded["no score after baseline" if len(series.points) < 2
                     else "no remission threshold"] += 1
        else:
            judged.append((series, reached))
    if pack.kind == "cut_points":
        rows = _cut_point_rows(pack, judged)
        method = ("replay of published cut points (nothing fitted on these episodes); tolerance "
                  f"{pack.params['tolerance_days']} days around each decision point")
    else:
        rows = _recovery_rows(pack, clinic_id, judged, now or datetime.now(UTC), seed)
        method = (f"{FOLDS}-fold cross-validation by patient (seed {seed}): each episode is "
                  "judged with a curve fitted on the other folds' episodes, never its own nor "
                  f"its patient's (out of sample); weeks {', '.join(map(str, RECOVERY_WEEKS))}, "
                  f"+/- {RECOVERY_TOLERANCE_DAYS} days, rows without episodes left out")
    return Backtest(pack.ref(), clinic_id, outcome, len(applicable), dict(excluded), method,
                    tuple(rows), _notes(pack, outcome))


def _notes(pack: RulePack, outcome: Outcome) -> tuple[str, ...]:
    event = "no response (< 50 % reduction from baseline)" if outcome == "response" else \
        "no remission (last score at or above remission_below)"
    return (f"positive = not on track; the event predicted = {event} at discharge, judged on "
            "the last valid staged score", f"rule {pack.label()}")


def _cut_point_rows(pack: RulePack, judged: Sequence[tuple[EpisodeSeries, bool]]
                    ) -> list[DecisionPointFigures]:
    tolerance = int(pack.params["tolerance_days"])
    rows = []
    for week in sorted(int(w) for w in pack.params["thresholds"]):
        label = f"week {week}"
        counts: Counter[str] = Counter()
        as_of = 7 * week + tolerance
        for series, reached in judged:
            signal = current_signal(pack, _as_of(series, as_of), opened_on=series.opened_on)
            if signal is None or signal.decision_point != label:
                continue
            counts[_cell(signal.status == "not_on_track", reached) if _later_score(series, as_of)
                   else "no_later_score"] += 1
        rows.append(_figures(str(pack.instrument), label, counts))
    return rows


def _recovery_rows(pack: RulePack, clinic_id: str,
                   judged: Sequence[tuple[EpisodeSeries, bool]], now: datetime,
                   seed: int) -> list[DecisionPointFigures]:
    rows = []
    for instrument in sorted({s.instrument for s, _ in judged}):
        members = [(s, r) for s, r in judged if s.instrument == instrument]
        curves = _fold_curves(pack, clinic_id, instrument, [s for s, _ in members], now, seed)
        for week in RECOVERY_WEEKS:
            counts = Counter(_recovery_cells(pack, members, curves, week))
            if counts.total():
                rows.append(_figures(instrument, f"week {week}", counts))
    return rows


def _fold_curves(pack: RulePack, clinic_id: str, instrument: str,
                 members: Sequence[EpisodeSeries], now: datetime, seed: int
                 ) -> dict[str, RecoveryCurve]:
    """Each episode's curve: fitted on the episodes of the other folds. The patients, in the
    order of a digest of their data (``EpisodeSeries.content``: dates and scores, never an id, so the same
    data give the same folds whatever the pseudonym key that made the ids) shuffled with
    ``seed``, are dealt into ``FOLDS`` folds, each episode in its patient's fold."""
    episodes_of: dict[str, list[EpisodeSeries]] = {}
    for series in members:
        episodes_of.setdefault(series.patient_ref, []).append(series)
    digest = {patient: hashlib.sha256("\n".join(sorted(e.content() for e in episodes)).encode())
              .hexdigest() for patient, episodes in episodes_of.items()}
    patients = sorted(episodes_of, key=lambda patient: (digest[patient], patient))
    random.Random(seed).shuffle(patients)
    fold_of = {patient: i % FOLDS for i, patient in enumerate(patients)}
    order = sorted(members, key=lambda s: (digest[s.patient_ref], s.content(), s.episode_id))
    folds = [[s for s in order if fold_of[s.patient_ref] == i] for i in range(FOLDS)]
    as_of = max(s.closed_on or s.opened_on for s in order)
    curves: dict[str, RecoveryCurve] = {}
    for i, fold in enumerate(folds):
        training = [s for j, other in enumerate(folds) if j != i for s in other]
        curve = fit_recovery_curve(clinic_id, instrument, training, pack=pack, now=now,
                                   as_of=as_of)
        curves.update((s.episode_id, curve) for s in fold)
    return curves


def _recovery_cells(pack: RulePack, members: Sequence[tuple[EpisodeSeries, bool]],
                    curves: dict[str, RecoveryCurve], week: int) -> Iterator[str]:
    as_of = 7 * week + RECOVERY_TOLERANCE_DAYS
    for series, reached in members:
        points = _as_of(series, as_of)
        if not points or abs((points[-1].on - series.opened_on).days - 7 * week) \
                > RECOVERY_TOLERANCE_DAYS:
            continue
        signal = current_signal(pack, points, opened_on=series.opened_on,
                                curve=curves[series.episode_id])
        if signal is None:
            continue
        if not _later_score(series, as_of):
            yield "no_later_score"
            continue
        yield "insufficient" if signal.status == "insufficient" else _cell(
            signal.status == "not_on_track", reached)


def _as_of(series: EpisodeSeries, day: int) -> list[Point]:
    """The series' points dated up to ``day`` of the episode and not after its discharge."""
    last = series.closed_on or date.max
    return [p for p in series.points if (p.on - series.opened_on).days <= day and p.on <= last]


def _later_score(series: EpisodeSeries, day: int) -> bool:
    """Whether the series has a score dated after ``day`` of the episode: the outcome at
    discharge (its last score) then comes later than what a decision point as of ``day`` saw."""
    return bool(series.points) and (series.points[-1].on - series.opened_on).days > day


def _cell(not_on_track: bool, reached: bool) -> str:
    if not_on_track:
        return "fp" if reached else "tp"
    return "tn" if reached else "fn"


def _figures(instrument: str, label: str, counts: Counter[str]) -> DecisionPointFigures:
    tp, fp, tn, fn = (counts[k] for k in ("tp", "fp", "tn", "fn"))
    return DecisionPointFigures(instrument, label, tp + fp + tn + fn, tp + fp,
                                counts["insufficient"], tp, fp, tn, fn, counts["no_later_score"])


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

