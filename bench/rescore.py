"""A full shadow re-scoring run on SQLite, next to the raw ``select_notifications`` read.

Run: ``.venv/bin/python -m bench.rescore --episodes 100000`` (generates the store first if the
file does not exist; ``--db`` keeps it between runs).

Generation: 60 random PHQ-9 courses of 8-12 weekly assessments are recorded through the Episode
aggregate (so they carry real stage decisions under ``frank1991``); each course's events are then
copied to new episode ids until ``--episodes`` episodes exist, saved 200 episodes per
transaction. Measurement, in a fresh process: (1) the raw read: ``select_notifications`` over
the whole store in pages of 1,000, decoding nothing; (2) a full shadow run under ``acnp2006``
(``projections.rescorings.execute``, with a progress bar). Both are reported as assessments per
second, their ratio, and the peak resident memory (``ru_maxrss``) of the process that ran the
shadow run alone, which should not grow with ``--episodes``.
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

from rich.console import Console
from rich.progress import Progress

from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from domain.criteria.builtin import get_criteria
from domain.episode import Episode
from projections.rescorings import RescoringStore

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
    return [e for e in episode.collect_events() if isinstance(e, Episode.Event)]


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


def raw_read(db: Path) -> None:
    """The baseline: every notification through ``select_notifications``, nothing decoded."""
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(db)})
    started, start, events, assessments = time.perf_counter(), 1, 0, 0
    while page := app.recorder.select_notifications(start=start, limit=1000):
        events += len(page)
        assessments += sum(1 for n in page if n.topic == Episode.AssessmentRecorded.TOPIC)
        start = page[-1].id + 1
    seconds = time.perf_counter() - started
    print(f"{events} {assessments} {seconds}")


def shadow_run(db: Path) -> None:
    """A full shadow run under acnp2006; prints episodes, changed, seconds and peak RSS (KiB)."""
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(db)}, clock=lambda: NOW)
    with tempfile.TemporaryDirectory() as tmp:
        log = RescoringLog({"PERSISTENCE_MODULE": "eventsourcing.popo"})
        store = RescoringStore(Path(tmp))
        runs = ShadowRuns(app, log, store)
        run = runs.request(criteria="acnp2006", recorded_by="bench")
        started = time.perf_counter()
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("re-scoring", total=None)
            runs.execute(run.run_id,
                         lambda done, total: progress.update(task, completed=done, total=total))
        seconds = time.perf_counter() - started
        result = store.run(run.run_id) or {}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{result.get('episodes')} {result.get('changed')} {seconds} {peak}")


def measure(db: Path) -> None:
    """Each part in a process of its own, so that ru_maxrss is the shadow run's alone."""
    def part(name: str) -> list[float]:
        out = subprocess.run([sys.executable, "-m", "bench.rescore", "--db", str(db), "--part",
                              name], check=True, capture_output=True, text=True).stdout
        return [float(x) for x in out.split()]

    events, assessments, raw_seconds = part("raw")
    episodes, changed, run_seconds, peak = part("run")
    print(f"store: {events:,.0f} events, {assessments:,.0f} assessments, {episodes:,.0f} "
          f"episodes ({changed:,.0f} would change under acnp2006)")
    print(f"raw select_notifications: {raw_seconds:.1f} s = {assessments / raw_seconds:,.0f} "
          "assessments/s")
    print(f"shadow run:               {run_seconds:.1f} s = {assessments / run_seconds:,.0f} "
          f"assessments/s  (ratio {raw_seconds / run_seconds:.2f})")
    print(f"peak RSS of the shadow run's process: {peak / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--part", choices=["raw", "run"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    db = args.db or Path(tempfile.gettempdir()) / f"outcomes-bench-{args.episodes}.sqlite"
    if args.part:
        (raw_read if args.part == "raw" else shadow_run)(db)
        return
    if not db.exists():
        generate(db, args.episodes)
    measure(db)


if __name__ == "__main__":
    main()
