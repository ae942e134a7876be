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
Each figure is the median of ``--repeat`` interleaved runs; the ratio is ours / bare (1.0 = as
fast as bare). The last line is one JSON object (``bench.figures``): record_assessment / the bare
command, with every median and the chained / unchained ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from application.outcomes import OutcomesApplication
from bench.figures import emit, line
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


def figures(results: dict[str, list[float]], episodes: int) -> dict[str, Any]:
    """The JSON last line: record_assessment / the bare command, and the other workloads."""
    medians = {name: statistics.median(values) for name, values in results.items()}
    return line("bench.record_assessments", results["bare command"],
                results["record_assessment"], baseline_name="bare command (get + one event + save)",
                workload_name="record_assessment", episodes=episodes,
                assessments=episodes * len(SCORES),
                per_second={k: round(v, 1) for k, v in medians.items()},
                chain_ratio=round(medians["record, chained"] / medians["record_assessment"], 3))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = measure(args.episodes, args.repeat)
    medians = {name: statistics.median(values) for name, values in results.items()}
    ours = medians["record_assessment"]
    print(f"SQLite file (WAL), {args.episodes} episodes x {len(SCORES)} assessments, "
          f"interleaved, median of {args.repeat}")
    print(f"{'workload':<20}{'per second':>12}{'ours / this':>14}")
    for name, value in medians.items():
        print(f"{name:<20}{value:>12,.0f}{ours / value:>14.2f}")
    print(f"chained / unchained throughput: {medians['record, chained'] / ours:.3f}")
    result = figures(results, args.episodes)
    emit(result)
    return result


if __name__ == "__main__":
    main()
