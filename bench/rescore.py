"""A full shadow re-scoring run on SQLite, next to the raw ``select_notifications`` read.

Run: ``.venv/bin/python -m bench.rescore --episodes 100000 [--repeat 3]`` (generates the store
first if the file does not exist; ``--db`` keeps it between runs).

Generation: 60 random PHQ-9 courses of 8-12 weekly assessments are recorded through the Episode
aggregate (so they carry real stage decisions under ``frank1991``); each course's events are then
copied to new episode ids until ``--episodes`` episodes exist, saved 200 episodes per
transaction. Measurement, each part in a fresh process, interleaved ``--repeat`` times: (1) the
raw read: ``select_notifications`` over the whole store in pages of 1,000, decoding nothing; (2)
a full shadow run under ``acnp2006`` (``projections.rescorings.execute``, with a progress bar).
Both are reported as assessments per
second (medians, min-max), their ratio, and the peak resident memory (``ru_maxrss``) of the
process that ran the shadow run alone, which should not grow with ``--episodes``. The last line
is one JSON object (``bench.figures``): the shadow run's rate / the raw read's.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from rich.console import Console
from rich.progress import Progress

from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from bench.figures import emit, line, peak_rss_mib
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


def raw_read(db: Path) -> tuple[float, ...]:
    """The baseline: every notification through ``select_notifications``, nothing decoded;
    (events, assessments, seconds)."""
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(db)})
    started, start, events, assessments = time.perf_counter(), 1, 0, 0
    while page := app.recorder.select_notifications(start=start, limit=1000):
        events += len(page)
        assessments += sum(1 for n in page if n.topic == Episode.AssessmentRecorded.TOPIC)
        start = page[-1].id + 1
    seconds = time.perf_counter() - started
    app.close()
    return events, assessments, seconds


def shadow_run(db: Path) -> tuple[float, ...]:
    """A full shadow run under acnp2006: (episodes, changed, seconds, peak RSS in KiB)."""
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
    app.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result.get("episodes") or 0, result.get("changed") or 0, seconds, peak


PARTS: dict[str, Callable[[Path], tuple[float, ...]]] = {"raw": raw_read, "run": shadow_run}


def in_subprocess(db: Path, name: str) -> list[float]:
    """One part in a process of its own, so that ru_maxrss is the shadow run's alone."""
    out = subprocess.run([sys.executable, "-m", "bench.rescore", "--db", str(db), "--part", name],
                         check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def measure(db: Path, repeat: int,
            part: Callable[[Path, str], list[float]] = in_subprocess) -> dict[str, Any]:
    """The raw read and the shadow run, interleaved (raw run raw run ...), ``repeat`` times."""
    raw_rates: list[float] = []
    run_rates: list[float] = []
    peaks: list[float] = []
    for _ in range(repeat):
        events, assessments, raw_seconds = part(db, "raw")
        episodes, changed, run_seconds, peak = part(db, "run")
        raw_rates.append(assessments / raw_seconds)
        run_rates.append(assessments / run_seconds)
        peaks.append(peak / 1024)
    print(f"store: {events:,.0f} events, {assessments:,.0f} assessments, {episodes:,.0f} "
          f"episodes ({changed:,.0f} would change under acnp2006); interleaved, median of "
          f"{repeat} (min-max)")
    print(f"raw select_notifications: {_rates(raw_rates)} assessments/s")
    print(f"shadow run:               {_rates(run_rates)} assessments/s  "
          f"(ratio {statistics.median(run_rates) / statistics.median(raw_rates):.2f})")
    print(f"peak RSS of the shadow run's process: {max(peaks):.0f} MiB")
    return line("bench.rescore", raw_rates, run_rates,
                baseline_name="raw select_notifications, nothing decoded",
                workload_name="full shadow run under acnp2006", events=int(events),
                assessments=int(assessments), episodes=int(episodes), changed=int(changed),
                peak_rss_mib=round(max(peaks), 1), driver_rss_mib=peak_rss_mib())


def _rates(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    db = args.db or Path(tempfile.gettempdir()) / f"outcomes-bench-{args.episodes}.sqlite"
    if args.part:
        print(" ".join(str(x) for x in PARTS[args.part](db)))
        return
    if not db.exists():
        generate(db, args.episodes)
    emit(measure(db, args.repeat))


if __name__ == "__main__":
    main()
