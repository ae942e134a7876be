"""A full shadow re-scoring run on SQLite, next to the raw ``select_notifications`` read.

Run: ``.venv/bin/python -m bench.rescore --episodes 100000 [--repeat 3]`` (generates the store
first if the file does not exist; ``--db`` keeps it between runs).

Generation: 60 random PHQ-9 courses of 8-12 weekly assessments are recorded through the Episode
aggregate (so they carry real stage decisions under ``frank1991``); each course's events are then
copied to new episode ids until ``--episodes`` episodes exist, saved 200 episodes per
transaction. Measurement, each part in a fresh process, interleaved ``--repeat`` times: (1) the
raw read: ``select_notifications`` over the whole store in pages of 1,000, decoding nothing; (2)
a full shadow run under ``acnp2006`` (``ShadowRuns.execute`` in ``--workers`` processes, default
as the CLI chooses, reading the fold-inputs read model, brought up to date before measuring as
its runner keeps it). Both are reported as assessments per second (medians, min-max), their
ratio; then where one process's run spends its time (from the events, and from the read model);
and the peak resident memory (``ru_maxrss``) of a run's processes over the store and over one
a tenth its size (``rss_large``, ``rss_small``: flat in the number of episodes). The last line
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
from uuid import UUID, uuid4

from eventsourcing.sqlite import SQLiteApplicationRecorder
from rich.console import Console
from rich.progress import Progress

from application.episode_streams import _sqlite_rows, count_episodes
from application.outcomes import OutcomesApplication
from application.rescoring import BATCH, RescoringLog, ShadowRuns, default_workers, id_ranges
from bench.figures import emit, line, peak_rss_mib
from domain.criteria.builtin import get_criteria
from domain.episode import Episode
from domain.rescoring import as_known_at, facts_of, rescore
from projections.fold_inputs import FoldInputsView, facts
from projections.rescorings import RescoringStore
from projections.runner import ReadModels

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


def _runs(app: OutcomesApplication, tmp: str, models: ReadModels | None = None
          ) -> tuple[RescoringStore, ShadowRuns]:
    store = RescoringStore(Path(tmp))
    return store, ShadowRuns(app, RescoringLog({"PERSISTENCE_MODULE": "eventsourcing.popo"}),
                             store, models)


def _models(app: OutcomesApplication, db: Path) -> ReadModels:
    """The store's fold-inputs read model (a views folder next to it)."""
    folder = Path(f"{db}-views")
    folder.mkdir(exist_ok=True)
    return ReadModels.open(app, folder, [FoldInputsView.name])


def prepare(db: Path, workers: int | None = None) -> tuple[float, ...]:
    """Bring the fold-inputs read model up to date (as its runner keeps it): (seconds,)."""
    app = _open(db)
    models, started = _models(app, db), time.perf_counter()
    models.catch_up([FoldInputsView.name])
    seconds = time.perf_counter() - started
    models.close()
    app.close()
    return (seconds,)


def _open(db: Path) -> OutcomesApplication:
    return OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                "SQLITE_DBNAME": str(db)}, clock=lambda: NOW)


def shadow_run(db: Path, workers: int | None = None) -> tuple[float, ...]:
    """A full shadow run under acnp2006 in ``workers`` processes (None: the default):
    (episodes, changed, seconds, peak RSS in KiB of this process or its largest worker,
    workers)."""
    app = _open(db)
    models = _models(app, db)
    with tempfile.TemporaryDirectory() as tmp:
        store, runs = _runs(app, tmp, models)
        run = runs.request(criteria="acnp2006", recorded_by="bench")
        count = workers or default_workers(count_episodes(app))
        started = time.perf_counter()
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("re-scoring", total=None)
            runs.execute(run.run_id,
                         lambda done, total: progress.update(task, completed=done, total=total),
                         workers=count)
        seconds = time.perf_counter() - started
        result = store.run(run.run_id) or {}
    models.close()
    app.close()
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return result.get("episodes") or 0, result.get("changed") or 0, seconds, peak, count


def phases(db: Path, workers: int | None = None) -> tuple[float, ...]:
    """Where one process's run spends its time (seconds): reading the rows, decoding them (the
    mapper, and the erasure check), replaying the episodes (``as_known_at``), the fold and
    comparison (``rescore``), and writing the results; the same steps as ``replay_range``,
    timed one by one."""
    app, clock = _open(db), time.perf_counter
    spent = dict.fromkeys(("read", "decode", "replay", "fold", "writes"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        store, runs = _runs(app, tmp)
        run = runs.request(criteria="acnp2006", recorded_by="bench")
        store.create_ranges(run.run_id, id_ranges(1), 0)
        criteria = app.criteria_set("acnp2006", None)
        batch: list[Any] = []
        read = 0

        def one(stored: list[Any]) -> None:
            nonlocal batch, read
            at = clock()
            events: list[Any] = [app.mapper.to_domain_event(e) for e in stored]
            readable = not app.is_erased(events[0].originator_id)
            at, spent["decode"] = clock(), spent["decode"] + clock() - at
            if readable:
                episode, known = as_known_at(events, run.as_of)
                at, spent["replay"] = clock(), spent["replay"] + clock() - at
                if episode is not None:
                    batch.append(rescore(facts_of(episode, known), criteria))
                spent["fold"] += clock() - at
            read += 1
            if read == BATCH:
                at = clock()
                store.save_range(run.run_id, 0, criteria.hash, batch, read,
                                 str(events[0].originator_id), done=False)
                spent["writes"] += clock() - at
                batch, read = [], 0

        assert isinstance(app.recorder, SQLiteApplicationRecorder)
        rows, current = _sqlite_rows(app.recorder, None, None), list[Any]()
        while True:
            at = clock()
            row = next(rows, None)
            spent["read"] += clock() - at
            if row is None or (current and row.originator_id != current[0].originator_id):
                one(current)
                current = []
            if row is None:
                break
            current.append(row)
        at = clock()
        store.save_range(run.run_id, 0, criteria.hash, batch, read, None, done=True)
        spent["writes"] += clock() - at
    app.close()
    return tuple(spent.values())


def phases_read_model(db: Path, workers: int | None = None) -> tuple[float, ...]:
    """The same for a run that reads the fold-inputs read model (seconds): reading its rows
    into ``EpisodeFacts`` (and the erasure check), the fold and comparison, the writes."""
    app, clock = _open(db), time.perf_counter
    models = _models(app, db)
    models.catch_up([FoldInputsView.name])
    view = models.view(FoldInputsView.name)
    assert isinstance(view, FoldInputsView)
    spent = dict.fromkeys(("read", "fold", "writes"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        store, runs = _runs(app, tmp)
        run = runs.request(criteria="acnp2006", recorded_by="bench")
        store.create_ranges(run.run_id, id_ranges(1), 0)
        criteria = app.criteria_set("acnp2006", None)
        batch: list[Any] = []
        rows = view.rows(None, None)
        while True:
            at = clock()
            row = next(rows, None)
            found = facts(row) if row is not None and not app.is_erased(
                UUID(row["episode_id"])) else None
            at, spent["read"] = clock(), spent["read"] + clock() - at
            if found is not None:
                batch.append(rescore(found, criteria))
            at, spent["fold"] = clock(), spent["fold"] + clock() - at
            if row is None or len(batch) == BATCH:
                store.save_range(run.run_id, 0, criteria.hash, batch, len(batch), None,
                                 done=row is None)
                spent["writes"] += clock() - at
                batch = []
            if row is None:
                break
    models.close()
    app.close()
    return tuple(spent.values())


def _raw(db: Path, workers: int | None = None) -> tuple[float, ...]:
    return raw_read(db)


PARTS: dict[str, Callable[..., tuple[float, ...]]] = {
    "raw": _raw, "run": shadow_run, "phases": phases, "phases_read_model": phases_read_model,
    "prepare": prepare}


def in_subprocess(db: Path, name: str, workers: int | None = None) -> list[float]:
    """One part in a process of its own, so that ru_maxrss is the shadow run's alone."""
    command = [sys.executable, "-m", "bench.rescore", "--db", str(db), "--part", name]
    out = subprocess.run(command + (["--workers", str(workers)] if workers else []),
                         check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def measure(db: Path, repeat: int, part: Callable[..., list[float]] = in_subprocess, *,
            workers: int | None = None, small: Path | None = None) -> dict[str, Any]:
    """The raw read and the shadow run, interleaved (raw run raw run ...), ``repeat`` times;
    then where one process's run spends its time, and the peak memory of a run over ``small``
    (a store a tenth the size) next to the large one's."""
    raw_rates: list[float] = []
    run_rates: list[float] = []
    peaks: list[float] = []
    given = (workers,) if workers else ()
    for _ in range(repeat):
        events, assessments, raw_seconds = part(db, "raw")
        episodes, changed, run_seconds, peak, used = part(db, "run", *given)
        raw_rates.append(assessments / raw_seconds)
        run_rates.append(assessments / run_seconds)
        peaks.append(peak / 1024)
    spent = dict(zip(("read", "decode", "replay", "fold", "writes"), part(db, "phases"),
                     strict=True))
    whole = sum(spent.values())
    spent_rm = dict(zip(("read", "fold", "writes"), part(db, "phases_read_model"), strict=True))
    whole_rm = sum(spent_rm.values())
    rss_small = part(small, "run", *given)[3] / 1024 if small is not None else None
    print(f"store: {events:,.0f} events, {assessments:,.0f} assessments, {episodes:,.0f} "
          f"episodes ({changed:,.0f} would change under acnp2006); interleaved, median of "
          f"{repeat} (min-max)")
    print(f"raw select_notifications: {_rates(raw_rates)} assessments/s")
    print(f"shadow run, {used:.0f} worker(s): {_rates(run_rates)} assessments/s  "
          f"(ratio {statistics.median(run_rates) / statistics.median(raw_rates):.2f})")
    print("one process's time, from the events: " + ", ".join(
        f"{name} {seconds:.2f} s ({seconds / whole:.0%})" for name, seconds in spent.items()))
    print("one process's time, from the fold-inputs read model: " + ", ".join(
        f"{name} {seconds:.2f} s ({seconds / whole_rm:.0%})"
        for name, seconds in spent_rm.items()))
    print(f"peak RSS of a run's process: {max(peaks):.0f} MiB"
          + (f" ({rss_small:.0f} MiB over a tenth of the episodes)" if rss_small else ""))
    return line("bench.rescore", raw_rates, run_rates,
                baseline_name="raw select_notifications, nothing decoded",
                workload_name="full shadow run under acnp2006", events=int(events),
                assessments=int(assessments), episodes=int(episodes), changed=int(changed),
                workers=int(used), phases_s={k: round(v, 3) for k, v in spent.items()},
                phases_share={k: round(v / whole, 3) for k, v in spent.items()},
                phases_read_model_s={k: round(v, 3) for k, v in spent_rm.items()},
                peak_rss_mib=round(max(peaks), 1), rss_large=round(max(peaks), 1),
                rss_small=round(rss_small, 1) if rss_small else None,
                driver_rss_mib=peak_rss_mib())


def _rates(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the run (default: as the CLI chooses)")
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    db = args.db or _path(args.episodes)
    if args.part:
        print(" ".join(str(x) for x in PARTS[args.part](db, args.workers)))
        return
    small = _path(max(1, args.episodes // 10))
    for path, size in ((db, args.episodes), (small, max(1, args.episodes // 10))):
        if not path.exists():
            generate(path, size)
        in_subprocess(path, "prepare")
    emit(measure(db, args.repeat, workers=args.workers, small=small))


def _path(episodes: int) -> Path:
    return Path(tempfile.gettempdir()) / f"outcomes-bench-{episodes}.sqlite"


if __name__ == "__main__":
    main()
