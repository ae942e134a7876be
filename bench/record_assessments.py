"""Assessments recorded per second through OutcomesApplication on SQLite, next to a bare aggregate.

Run: ``make bench`` or ``.venv/bin/python -m bench.record_assessments [--episodes N] [--repeat R]``.

Three workloads on separate SQLite files (WAL, the library's defaults) in one run:
- ``bare save``: a one-field ``eventsourcing`` aggregate, one event per ``save()`` (no reload);
- ``bare command``: the same, but ``repository.get`` + one event + ``save()`` per call, which is
  what any command handler does;
- ``record_assessment``: Outcome Ledger's command: reload the episode, validate and score, re-fold
  its valid assessments, append AssessmentRecorded plus any stage events, in one transaction;
- ``record, chained``: the same with the hash chain written in the append's transaction (the
  recorder ``bootstrap.Settings`` selects, trust.chain; ADR 0022), interleaved with the unchained
  run in every repeat.
- ``long episode``: record_assessment on episodes of ``--long-events`` (~200) events next to
  episodes of ~10, with the Episode snapshots (every 50 events, ADR 0025) on and off, the four
  interleaved in every repeat on one chained store per length (prefilled once).
Each figure is the median of ``--repeat`` interleaved runs; the ratio is ours / bare (1.0 = as
fast as bare). The last line is one JSON object (``bench.figures``): record_assessment / the bare
command, with every median, the chained / unchained ratio and ``long_over_short`` (seconds per
assessment on a long episode / on a short one, snapshots on; the goal is <= 2) with
``long_over_short_unsnapshotted``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from application.outcomes import OutcomesApplication
from bench.figures import emit, line
from domain.episode import Episode
from trust.chain import SQLITE_RECORDER_TOPIC

# V1 of the SPEC: response, remission and recovery happen along the way, like a real course.
SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2026, 1, 5)


class Counter(Aggregate):
    """The bare baseline: one small event per command."""

    @event("Created")
    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by


def _env(folder: Path, name: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(folder / name)}


def bare_save(folder: Path, episodes: int) -> float:
    app: Application[UUID] = Application(_env(folder, "bare_save.sqlite"))
    aggregates = [Counter() for _ in range(episodes)]
    app.save(*aggregates)
    started = time.perf_counter()
    for _ in SCORES:
        for aggregate in aggregates:
            aggregate.increment(by=1)
            app.save(aggregate)
    return episodes * len(SCORES) / (time.perf_counter() - started)


def bare_command(folder: Path, episodes: int) -> float:
    app: Application[UUID] = Application(_env(folder, "bare_command.sqlite"))
    aggregates = [Counter() for _ in range(episodes)]
    app.save(*aggregates)
    ids = [a.id for a in aggregates]
    started = time.perf_counter()
    for _ in SCORES:
        for aggregate_id in ids:
            aggregate: Counter = app.repository.get(aggregate_id)
            aggregate.increment(by=1)
            app.save(aggregate)
    return episodes * len(SCORES) / (time.perf_counter() - started)


def record_assessments(folder: Path, episodes: int, *, chained: bool = False) -> float:
    env = _env(folder, "chained.sqlite" if chained else "outcomes.sqlite")
    if chained:
        env["APPLICATION_RECORDER_TOPIC"] = SQLITE_RECORDER_TOPIC
    return record_in(env, episodes)


def record_in(env: dict[str, str], episodes: int) -> float:
    """Assessments per second: ``episodes`` episodes opened, then 10 weekly PHQ-9 totals each
    recorded with ``record_assessment``, in the store of the library environment ``env``."""
    now = datetime(2027, 1, 1, tzinfo=UTC)
    app = OutcomesApplication(env, clock=lambda: now)
    try:
        ids = [app.open_episode(patient_ref=f"bench-{n}", clinic_id="bench", recorded_by="bench",
                                criteria="acnp2006", opened_on=START).episode_id
               for n in range(episodes)]
        started = time.perf_counter()
        for week, score in enumerate(SCORES):
            for episode_id in ids:
                app.record_assessment(episode_id, instrument="PHQ-9", total=score,
                                      administered=START + timedelta(weeks=week),
                                      recorded_by="bench")
        return episodes * len(SCORES) / (time.perf_counter() - started)
    finally:
        app.close()


class Unsnapshotted(OutcomesApplication):
    """The write model with the Episode snapshots off (the comparison of ``long episode``)."""

    name = "Outcomes"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}


LONG_START = date(2020, 1, 6)
NOW = datetime(2027, 1, 1, tzinfo=UTC)


def prefill(env: dict[str, str], episodes: int, events: int) -> list[UUID]:
    """``episodes`` episodes of at least ``events`` events each (PHQ-9 totals every 3 days,
    with their stage events), built by the Episode's own commands and saved once per episode
    (what record_assessment would have stored, snapshots included); returns their ids."""
    app = OutcomesApplication(env, clock=lambda: NOW)
    try:
        ids = []
        for n in range(episodes):
            episode = Episode.open(episode_id=uuid4(), patient_ref=f"long-{n}", clinic_id="bench",
                                   criteria=app.criteria_set("acnp2006"), instrument="PHQ-9",
                                   opened_on=LONG_START, recorded_by="bench", now=NOW)
            day = 0
            while episode.version < events:
                episode.record_assessment(
                    assessment_id=f"a{day}", instrument="PHQ-9", total=SCORES[day % len(SCORES)],
                    administered=LONG_START + timedelta(days=3 * day), items=None,
                    recorded_by="bench", now=NOW)
                day += 1
            app.save(episode)
            ids.append(episode.id)
        return ids
    finally:
        app.close()


def record_more(env: dict[str, str], ids: list[UUID], rounds: int, *, snapshots: bool) -> float:
    """Assessments per second: ``rounds`` more PHQ-9 totals on each episode of ``ids``."""
    app = (OutcomesApplication if snapshots else Unsnapshotted)(env, clock=lambda: NOW)
    try:
        started = time.perf_counter()
        for _ in range(rounds):
            for episode_id in ids:
                app.record_assessment(episode_id, instrument="PHQ-9", total=12,
                                      administered=NOW.date() - timedelta(days=1),
                                      recorded_by="bench")
        return len(ids) * rounds / (time.perf_counter() - started)
    finally:
        app.close()


def measure_long(folder: Path, episodes: int, events: int, rounds: int,
                 repeat: int) -> dict[str, list[float]]:
    """Short (~10 events) and long (``events``) episodes, snapshots off and on, interleaved
    (A B C D A B C D ...) on two chained stores prefilled once."""
    envs = {}
    ids = {}
    for length, size in (("short", 10), ("long", events)):
        envs[length] = {**_env(folder, f"{length}.sqlite"),
                        "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER_TOPIC}
        ids[length] = prefill(envs[length], episodes, size)
    results: dict[str, list[float]] = {f"{length}, snapshots {on}": []
                                       for on in ("off", "on") for length in ("short", "long")}
    for _ in range(repeat):
        for on in ("off", "on"):
            for length in ("short", "long"):
                results[f"{length}, snapshots {on}"].append(
                    record_more(envs[length], ids[length], rounds, snapshots=on == "on"))
    return results


def measure(episodes: int, repeat: int) -> dict[str, list[float]]:
    """Every workload once per repeat, interleaved (A B C D A B C D ...), each on a fresh file."""
    results: dict[str, list[float]] = {"bare save": [], "bare command": [], "record_assessment": [],
                                       "record, chained": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            results["bare save"].append(bare_save(folder, episodes))
            results["bare command"].append(bare_command(folder, episodes))
            results["record_assessment"].append(record_assessments(folder, episodes))
            results["record, chained"].append(record_assessments(folder, episodes, chained=True))
    return results


def figures(results: dict[str, list[float]], episodes: int,
            long: dict[str, list[float]] | None = None, long_events: int = 0) -> dict[str, Any]:
    """The JSON last line: record_assessment / the bare command, the other workloads, and
    (``long``) seconds per assessment on a long episode over a short one."""
    medians = {name: statistics.median(values) for name, values in results.items()}
    extra: dict[str, Any] = {}
    if long:
        lm = {name: statistics.median(values) for name, values in long.items()}
        extra = {"long_events": long_events,
                 "long_per_second": {k: round(v, 1) for k, v in lm.items()},
                 "long_over_short": round(lm["short, snapshots on"] / lm["long, snapshots on"], 3),
                 "long_over_short_unsnapshotted": round(
                     lm["short, snapshots off"] / lm["long, snapshots off"], 3)}
    return line("bench.record_assessments", results["bare command"],
                results["record_assessment"], baseline_name="bare command (get + one event + save)",
                workload_name="record_assessment", episodes=episodes,
                assessments=episodes * len(SCORES),
                per_second={k: round(v, 1) for k, v in medians.items()},
                chain_ratio=round(medians["record, chained"] / medians["record_assessment"], 3),
                **extra)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-episodes", type=int, default=10,
                        help="episodes of each length in the long-episode measurement (0: skip)")
    parser.add_argument("--long-events", type=int, default=200)
    parser.add_argument("--long-rounds", type=int, default=5,
                        help="assessments recorded on each episode per measurement")
    args = parser.parse_args(argv)
    results = measure(args.episodes, args.repeat)
    long = None
    if args.long_episodes:
        with tempfile.TemporaryDirectory() as tmp:
            long = measure_long(Path(tmp), args.long_episodes, args.long_events,
                                args.long_rounds, args.repeat)
    medians = {name: statistics.median(values) for name, values in results.items()}
    ours = medians["record_assessment"]
    print(f"SQLite file (WAL), {args.episodes} episodes x {len(SCORES)} assessments, "
          f"interleaved, median of {args.repeat}")
    print(f"{'workload':<20}{'per second':>12}{'ours / this':>14}")
    for name, value in medians.items():
        print(f"{name:<20}{value:>12,.0f}{ours / value:>14.2f}")
    print(f"chained / unchained throughput: {medians['record, chained'] / ours:.3f}")
    if long:
        print(f"long episode ({args.long_events} events) vs short (10), chained, "
              f"{args.long_episodes} episodes x {args.long_rounds} each, median of {args.repeat}")
        for name, values in long.items():
            print(f"{name:<24}{statistics.median(values):>12,.0f} per second")
    result = figures(results, args.episodes, long, args.long_events)
    emit(result)
    return result


if __name__ == "__main__":
    main()
