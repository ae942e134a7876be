"""A full shadow re-scoring run on SQLite, next to the raw ``select_notifications`` read.

Run: ``.venv/bin/python -m bench.rescore --episodes 100000`` (generates the store first if the
file does not exist; ``--db`` keeps it between runs).

Generation: 60 random PHQ-9 courses of 8-12 weekly assessments are recorded through the Episode
aggregate (so they carry real stage decisions under ``frank1991``); each course's events are then
copied to new episode ids until ``--episodes`` episodes exist, saved 200 episodes per
transaction. Measurement, in a fresh process: (1) the raw read: ``select_notifications`` over
the whole store in pages of 1,000, decoding nothing; (2) a full shadow run under ``acnp2006``
(``projections.rescorings.execute``, with a progress bar). Both are reported as assessments per
second, their ratio, and the run's peak resident memory (``ru_maxrss``), which should not grow
with ``--episodes``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from rich.progress import Progress

from domain.application import OutcomesApplication
from domain.criteria.builtin import get_criteria
from domain.episode import Episode
from domain.rescoring import RescoringLog
from projections.rescorings import RescoringStore, execute, request

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def _course(rng: random.Random, criteria_id: str) -> list[Episode.Event]:
    episode = Episode.open(episode_id=uuid4(), patient_ref="bench", clinic_id="bench",
                           criteria=get_criteria(criteria_id), instrument="PHQ-9",
                           opened_on=date(2026, 1, 5), recorded_by="bench", now=NOW)
    score = rng.randint(10, 24)
    for week in range(rng.randint(8, 12)):
        score = max(0, min(27, score + rng.randint(-5, 2)))
        episode.record_assessment(assessment_id=f"a{week}", instrument="PHQ-9",
                                  administered=date(2026, 1, 5) + timedelta(weeks=week),
                                  items=None, total=score, recorded_by="bench", now=NOW)
    return list(episode.collect_events())


def generate(db: Path, episodes: int) -> None:
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(db)}, clock=lambda: NOW)
    rng = random.Random(1991)
    courses = [_course(rng, "frank1991") for _ in range(60)]
    with Progress() as progress:
        task = progress.add_task("generating", total=episodes)
        for start in range(0, episodes, 200):
            batch = []
            for n in range(start, min(start + 200, episodes)):
                new_id = uuid4()
                batch += [dataclasses.replace(e, originator_id=new_id) for e in courses[n % 60]]
            app.save(*batch)
            progress.update(task, completed=min(start + 200, episodes))
    app.close()


def measure(db: Path) -> None:
    """Runs in its own process so that ru_maxrss is the shadow run's alone."""
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(db)}, clock=lambda: NOW)
    started, start, events = time.perf_counter(), 1, 0
    while page := app.recorder.select_notifications(start=start, limit=1000):
        events += len(page)
        start = page[-1].id + 1
    raw_seconds = time.perf_counter() - started
    assessments = len(app.recorder.select_notifications(
        start=1, limit=10**9, topics=[Episode.AssessmentRecorded.TOPIC]))
    with tempfile.TemporaryDirectory() as tmp:
        log = RescoringLog({"PERSISTENCE_MODULE": "eventsourcing.popo"})
        store = RescoringStore(Path(tmp))
        run = request(app, log, store, criteria="acnp2006", params=None, clinic_id=None,
                      as_of=None, recorded_by="bench")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with Progress() as progress:
            task = progress.add_task("re-scoring", total=None)
            execute(app, log, store, run.id,
                    lambda done, total: progress.update(task, completed=done, total=total))
        run_seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = store.run(run.id) or {}
    print(f"store: {events:,} events, {assessments:,} assessments, {result.get('episodes'):,} "
          f"episodes ({result.get('changed'):,} would change under acnp2006)")
    print(f"raw select_notifications: {raw_seconds:.1f} s = {assessments / raw_seconds:,.0f} "
          "assessments/s")
    print(f"shadow run:               {run_seconds:.1f} s = {assessments / run_seconds:,.0f} "
          f"assessments/s  (ratio {raw_seconds / run_seconds:.2f})")
    print(f"peak RSS: {peak / 1024:.0f} MiB (before the run {before / 1024:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    db = args.db or Path(tempfile.gettempdir()) / f"outcomes-bench-{args.episodes}.sqlite"
    if args.measure_only:
        measure(db)
        return
    if not db.exists():
        generate(db, args.episodes)
    subprocess.run([sys.executable, "-m", "bench.rescore", "--db", str(db), "--measure-only"],
                   check=True)


if __name__ == "__main__":
    main()
