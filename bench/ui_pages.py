"""Server-side time of the /ui/ pages on a large SQLite store, next to the API's JSON reads.

Run: ``make bench-ui`` or ``.venv/bin/python -m bench.ui_pages [--episodes 100000]
[--requests 300] [--repeat 3] [--seed 14] [--store DIR] [--json FILE]``.

The store (built once, reused): ``--episodes`` episodes over 20 clinics, ``clinic-big`` holding
a tenth of them (10,000 of 100,000) and ``clinic-01`` .. ``clinic-19`` the rest in turn (4,737
each at 100,000). Each episode (seeded, so the same parameters give the same store) opens on a
Monday of the 52 weeks from 29 Dec 2025 and has 6-12 weekly PHQ-9 totals up to the fixed clock
(4 Jan 2027): most fall from 12-24 by 0-4 points a week, a fifth stay at 17 or more through
week 4 (``schueller2015-phq9``: off track), one in 25 answers item 9 (all nine items recorded:
a ``phq9-item9`` safety alert), one in 12 has a GAD-7 total beside each PHQ-9, and three in four
of those whose course ended before the clock are discharged a week after their last assessment
(discharge dates across 2026). The episodes are written through ``record_batch`` (ADR 0026; 500
episodes a transaction, as the importer's batches), the discharges a second ``save`` per batch;
then every read model is caught up (``ReadModels.catch_up``), each in a process of its own, all
at once (the slowest, the episodes read model, bounds the time), and one shadow re-scoring run of
``clinic-big`` under ``frank1991`` is executed, so that the run page has data. The store lives
in ``var/bench/ui-<digest>/`` (``--store`` another folder), the digest being that of the
parameters; a folder with ``built.json`` is reused as it is.

Measurement: the app in this process (``api.create_app`` on the built services, clock fixed),
called through starlette's TestClient from loopback with dev bearer tokens of the right role
(clinician: caseload, episode; auditor: the episode page with its audit table; researcher:
outcomes, re-scoring run; criteria: clinician). Each request is timed from send to its whole
body (``time.perf_counter``). Every read model is caught up first (one of a newer version than
the store's, e.g. after a merge, is rebuilt then, outside the timing), then one warm-up request
per endpoint (a page answering other than 200 there is reported ``error <status>`` and skipped;
a route not in the app is reported ``absent``). Then ``--repeat`` rounds of ``--requests``
requests per endpoint, interleaved request by request (page A, page B, ..., /health, JSON
episode, JSON caseload, page A, ...), on episodes and clinics drawn with
``random.Random(--seed)``. Per endpoint and round: p50, p99 and max (ms); reported: the medians
of the rounds' p50 and p99, the largest max, and the ratio of a page's p99 to its bare JSON
reference's (the caseload pages to ``GET /clinics/{c}/caseload``, the others to ``GET
/episodes/{id}``), both medians of the same rounds. The goal (issue 14): p99 < 200 ms per page,
printed PASS/FAIL; the exit status is 0 either way (a benchmark, not a test). The table is
printed as markdown, the figures written to ``--json`` and printed as the last line (one JSON
object, ``bench: bench.ui_pages``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import create_app
from api.auth import DevIssuer, dev_key_path
from api.serving import settle_heap
from application.batch import EpisodePlan, RecordStep
from application.outcomes import OutcomesApplication
from bench.figures import emit, peak_rss_mib
from bootstrap import Services, Settings, build
from projections.runner import READ_MODELS, ReadModels

NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)
FIRST_MONDAY = date(2025, 12, 29)
BIG = "clinic-big"
TYPICAL = tuple(f"clinic-{n:02d}" for n in range(1, 20))
CLINICS = (BIG, *TYPICAL)
BATCH = 500  # episodes per record_batch transaction (importers.pipeline.DEFAULT_BATCH_SIZE)
LOOPBACK = ("127.0.0.1", 50000)
GOAL_MS = 200.0
LAYOUT = 1  # bump when the generated store changes: a new digest, a new store


@dataclass(frozen=True)
class Course:
    """One generated episode: its id, clinic, opening Monday, weekly PHQ-9 rows (date, total,
    the nine items or None), GAD-7 totals on the same dates (or none), and its discharge date
    (None: still open)."""

    episode_id: UUID
    clinic_id: str
    opened_on: date
    phq9: list[tuple[date, int, list[int] | None]]
    gad7: list[tuple[date, int]]
    discharged_on: date | None


def _items(rng: random.Random, total: int, item9: int) -> list[int]:
    """Nine PHQ-9 answers (0-3 each) summing to ``total``, the ninth ``item9``."""
    rest, items = total - item9, [0] * 8
    for _ in range(rest):
        free = [i for i in range(8) if items[i] < 3]
        items[rng.choice(free)] += 1
    return [*items, item9]


def courses(episodes: int, seed: int) -> Iterator[Course]:
    """The ``episodes`` generated courses, in order (see the module's docstring)."""
    rng = random.Random(seed)
    today = NOW.date()
    for n in range(episodes):
        episode_id = UUID(int=rng.getrandbits(128), version=4)
        clinic = BIG if n % 10 == 0 else TYPICAL[(n - n // 10 - 1) % len(TYPICAL)]
        opened_on = FIRST_MONDAY + timedelta(weeks=rng.randrange(52))
        weeks = rng.randint(6, 12)
        off_track, item9 = rng.random() < 0.2, rng.random() < 0.04
        score = rng.randint(18, 24) if off_track else rng.randint(12, 24)
        gad = rng.randint(8, 18) if rng.random() < 1 / 12 else None
        phq9: list[tuple[date, int, list[int] | None]] = []
        gad7: list[tuple[date, int]] = []
        item9_week = rng.randrange(weeks)
        for week in range(weeks):
            on = opened_on + timedelta(weeks=week)
            if on > today:
                break
            answer = rng.randint(1, 2) if item9 and week == item9_week else 0
            total = max(answer, min(24 + answer, score))
            phq9.append((on, total, _items(rng, total, answer) if item9 else None))
            if gad is not None:
                gad7.append((on, gad))
                gad = max(0, min(21, gad + rng.randint(-3, 1)))
            step = rng.randint(-1, 1) if off_track and week < 4 else rng.randint(-4, 1)
            score = max(0, min(27, score + step))
        last = phq9[-1][0]
        closing = last + timedelta(weeks=1)
        discharged = closing if len(phq9) == weeks and closing <= today and \
            rng.random() < 0.75 else None
        yield Course(episode_id, clinic, opened_on, phq9, gad7, discharged)


def _steps(course: Course) -> Callable[[Any], list[RecordStep]]:
    rows: list[RecordStep] = []
    for k, (on, total, items) in enumerate(course.phq9):
        rows.append(RecordStep(f"phq9-{k}", "PHQ-9", on, "bench", items=items,
                               total=None if items else total))
    rows += [RecordStep(f"gad7-{k}", "GAD-7", on, "bench", total=total)
             for k, (on, total) in enumerate(course.gad7)]
    return lambda episode: rows


def settings_for(folder: Path) -> Settings:
    """The store's settings: SQLite in ``folder`` (development mode: the dev issuer's key lies
    there), no rate limit, no background work (catch-ups, sweeps, checkpoints)."""
    return Settings(store="sqlite", sqlite_path=folder / "outcomes.sqlite",
                    allowed_hosts="testserver", rate_limit="off", catch_up_interval=0,
                    overdue_sweep_interval=0, checkpoint_interval=0, log_level="WARNING")


def digest(episodes: int, seed: int) -> str:
    """The first 12 hex characters of the SHA-256 of the store's parameters."""
    text = json.dumps({"episodes": episodes, "seed": seed, "clinics": CLINICS,
                       "layout": LAYOUT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_store(folder: Path, episodes: int, seed: int, say: Callable[[str], None] = print
                ) -> dict[str, Any]:
    """Write the generated store into ``folder`` (see the module's docstring) and return what
    ``built.json`` records: counts, the run id, seconds per step."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings_for(folder)
    services = build(settings, clock=lambda: NOW)
    app = services.app
    seconds: dict[str, float] = {}
    counts = {"episodes": 0, "assessments": 0, "discharged": 0, "item9": 0, "gad7": 0}
    try:
        started = time.perf_counter()
        batch: list[Course] = []
        for course in courses(episodes, seed):
            batch.append(course)
            if len(batch) == BATCH:
                _save(app, batch, counts)
                batch = []
                if counts["episodes"] % 10_000 == 0:
                    say(f"  {counts['episodes']:,} episodes, "
                        f"{time.perf_counter() - started:.0f} s")
        if batch:
            _save(app, batch, counts)
        seconds["record"] = time.perf_counter() - started
        at = time.perf_counter()
        catch_up_in_parallel(folder, list(READ_MODELS))
        services.read_models.catch_up()  # nothing left: each was caught up by its process
        seconds["catch_up"] = time.perf_counter() - at
        say(f"  read models caught up: {seconds['catch_up']:.0f} s")
        at = time.perf_counter()
        run = services.shadow_runs.request(criteria="frank1991", clinic_id=BIG,
                                           recorded_by="bench")
        services.shadow_runs.execute(run.run_id, workers=1)
        seconds["rescoring"] = time.perf_counter() - at
        events = app.recorder.max_notification_id() or 0
    finally:
        services.close()
    built = {**counts, "events": events, "run_id": str(run.run_id), "seed": seed,
             "clinics": list(CLINICS), "big_clinic": BIG,
             "seconds": {k: round(v, 1) for k, v in seconds.items()},
             "build_seconds": round(sum(seconds.values()), 1)}
    (folder / "built.json").write_text(json.dumps(built, indent=1))
    return built


def catch_up_in_parallel(folder: Path, names: list[str]) -> None:
    """Catch up the read models ``names`` of the store in ``folder``, one process each, all at
    once (each its own SQLite file: no two write the same one; the slowest bounds the time).
    Raises SystemExit naming a read model whose process failed."""
    processes = {name: subprocess.Popen(
        [sys.executable, "-m", "bench.ui_pages", "--store", str(folder), "--catch-up", name],
        cwd=Path(__file__).resolve().parents[1]) for name in names}
    failed = [name for name, process in processes.items() if process.wait() != 0]
    if failed:
        raise SystemExit(f"the catch-up of {', '.join(failed)} failed")


def catch_up_one(folder: Path, name: str) -> None:
    """One read model of the store in ``folder`` brought up to date (``ReadModels.catch_up``)."""
    settings = settings_for(folder)
    app = OutcomesApplication(settings.eventsourcing_env(), clock=lambda: NOW)
    try:
        models = ReadModels.open(app, settings.view_store(), [name])
        started = time.perf_counter()
        models.catch_up([name])
        print(f"  {name}: caught up in {time.perf_counter() - started:.0f} s", flush=True)
        models.close()
    finally:
        app.close()


def _save(app: Any, batch: list[Course], counts: dict[str, int]) -> None:
    """One record_batch of ``batch``, then their discharges in one more save."""
    outcomes = app.record_batch([EpisodePlan(c.episode_id, {
        "patient_ref": f"pt-{c.episode_id.hex[:10]}", "clinic_id": c.clinic_id,
        "recorded_by": "bench", "opened_on": c.opened_on}, _steps(c)) for c in batch])
    failed = [r for o in outcomes for r in o.results if isinstance(r, Exception)]
    if failed or any(o.error for o in outcomes):
        raise SystemExit(f"the generated batch failed: {failed[:1] or outcomes[0].error}")
    closing = [app.get_episode(c.episode_id) for c in batch if c.discharged_on]
    for episode, course in zip(closing, [c for c in batch if c.discharged_on], strict=True):
        assert course.discharged_on is not None
        episode.close(discharged_on=course.discharged_on, recorded_by="bench", now=NOW)
    if closing:
        app.save(*closing)
    counts["episodes"] += len(batch)
    counts["assessments"] += sum(len(c.phq9) + len(c.gad7) for c in batch)
    counts["discharged"] += len(closing)
    counts["item9"] += sum(1 for c in batch if c.phq9[0][2] is not None)
    counts["gad7"] += sum(1 for c in batch if c.gad7)


def store(folder: Path, episodes: int, seed: int) -> dict[str, Any]:
    """The store of these parameters in ``folder``: reused when ``built.json`` is there, else
    (re)built (a half-built folder is emptied first)."""
    marker = folder / "built.json"
    if marker.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        print(f"store: {folder} (reused; built in {built['build_seconds']:.0f} s)")
        return built
    if folder.exists():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    print(f"store: building {episodes:,} episodes in {folder}")
    built = build_store(folder, episodes, seed)
    print(f"store built in {built['build_seconds']:.0f} s ({built['seconds']}): "
          f"{built['episodes']:,} episodes, {built['assessments']:,} assessments, "
          f"{built['events']:,} events")
    return built


@dataclass(frozen=True)
class Endpoint:
    """One measured request: its row name, the app route it needs, the role of its token,
    a function of the random generator giving its URL, and the bare reference it is compared
    with (None: it is a reference)."""

    name: str
    route: str
    role: str
    url: Callable[[random.Random], str]
    reference: str | None


def endpoints(ids: Sequence[str], run_id: str) -> list[Endpoint]:
    """The pages, then the bare references, in the order they are interleaved."""
    def episode(rng: random.Random) -> str:
        return str(rng.choice(ids))

    def clinic(rng: random.Random) -> str:
        return rng.choice(CLINICS)

    json_episode, json_caseload = "GET /episodes/{id} (JSON)", "GET /clinics/{c}/caseload (JSON)"
    return [
        Endpoint("caseload, big clinic", "/ui/clinics/{clinic_id}/caseload", "clinician",
                 lambda r: f"/ui/clinics/{BIG}/caseload", json_caseload),
        Endpoint("caseload, typical clinic", "/ui/clinics/{clinic_id}/caseload", "clinician",
                 lambda r: f"/ui/clinics/{r.choice(TYPICAL)}/caseload", json_caseload),
        Endpoint("episode, clinician", "/ui/episodes/{episode_id}", "clinician",
                 lambda r: f"/ui/episodes/{episode(r)}", json_episode),
        Endpoint("episode, auditor (audit table)", "/ui/episodes/{episode_id}", "auditor",
                 lambda r: f"/ui/episodes/{episode(r)}", json_episode),
        Endpoint("clinic outcomes, researcher", "/ui/clinics/{clinic_id}/outcomes",
                 "researcher", lambda r: f"/ui/clinics/{clinic(r)}/outcomes", json_episode),
        Endpoint("re-scoring run, researcher", "/ui/rescorings/{run_id}", "researcher",
                 lambda r: f"/ui/rescorings/{run_id}", json_episode),
        Endpoint("criteria sets", "/ui/criteria", "clinician", lambda r: "/ui/criteria",
                 json_episode),
        Endpoint("GET /health", "/health", "clinician", lambda r: "/health", None),
        Endpoint(json_episode, "/episodes/{episode_id}", "clinician",
                 lambda r: f"/episodes/{episode(r)}", None),
        Endpoint(json_caseload, "/clinics/{clinic_id}/caseload", "clinician",
                 lambda r: f"/clinics/{clinic(r)}/caseload", None),
    ]


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method, as ``bench.api_load``)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def routes_of(app: FastAPI) -> set[str]:
    """The paths of every route of ``app``, included routers walked (FastAPI 0.165 includes
    a router as an ``_IncludedRouter`` holding the original and its prefix)."""
    def walk(routes: Sequence[Any], prefix: str) -> Iterator[str]:
        for route in routes:
            if hasattr(route, "original_router"):
                more = getattr(route.include_context, "prefix", "") or ""
                yield from walk(route.original_router.routes, prefix + more)
            else:
                yield prefix + getattr(route, "path", "")
    return set(walk(app.routes, ""))


def measure(folder: Path, built: dict[str, Any], requests: int, repeat: int,
            seed: int) -> dict[str, dict[str, Any]]:
    """Every endpoint's latencies (see the module's docstring): name -> {"status": "measured",
    "absent" or "error <code>", "rounds": [[ms, ...], ...]}."""
    settings = settings_for(folder)
    services: Services = build(settings, clock=lambda: NOW)
    # str, not UUID: the bench's own 100,000 ids are no objects for the server's collector
    ids = [str(c.episode_id) for c in courses(built["episodes"], built["seed"])]
    try:
        at = time.perf_counter()
        services.read_models.catch_up()  # a read model of a newer version is rebuilt here
        print(f"read models brought up to date before measuring: "
              f"{time.perf_counter() - at:.1f} s")
        app = create_app(settings, services=services)
        issuer = DevIssuer(dev_key_path(settings))
        headers = {role: {"Authorization": "Bearer " + issuer.mint(
            sub=f"bench-{role}", roles=(role,), clinics=CLINICS, ttl=86400)}
            for role in ("clinician", "auditor", "researcher")}
        result: dict[str, dict[str, Any]] = {}
        present = routes_of(app)
        with TestClient(app, client=LOOPBACK,
                        raise_server_exceptions=False) as client:  # a 500 is a row
            live: list[Endpoint] = []
            rng = random.Random(seed)
            for endpoint in endpoints(ids, built["run_id"]):
                if endpoint.route not in present:
                    result[endpoint.name] = {"status": "absent", "rounds": []}
                    continue
                reply = client.get(endpoint.url(rng), headers=headers[endpoint.role])
                if reply.status_code != 200:
                    result[endpoint.name] = {"status": f"error {reply.status_code}",
                                             "rounds": []}
                    continue
                result[endpoint.name] = {"status": "measured", "rounds": []}
                live.append(endpoint)
            settle_heap()  # as ``outcomes serve`` does once a worker has started
            for _ in range(repeat):
                rounds: dict[str, list[float]] = {e.name: [] for e in live}
                for _ in range(requests):
                    for endpoint in live:
                        url, auth = endpoint.url(rng), headers[endpoint.role]
                        started = time.perf_counter()
                        reply = client.get(url, headers=auth)
                        _ = reply.content
                        rounds[endpoint.name].append(1000 * (time.perf_counter() - started))
                        if reply.status_code != 200:  # counted, and shown in the status
                            result[endpoint.name]["failures"] = \
                                result[endpoint.name].get("failures", 0) + 1
                for name, values in rounds.items():
                    result[name]["rounds"].append(values)
    finally:
        services.close()
    for endpoint in endpoints(ids, built["run_id"]):
        result[endpoint.name]["reference"] = endpoint.reference
    return result


def summarise(result: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per endpoint: p50 and p99 (medians of the rounds'), max (of all), and for a page the
    ratio of its p99 to its reference's and whether it is under the goal."""
    rows: dict[str, dict[str, Any]] = {}
    for name, found in result.items():
        status = found["status"] + (f", {found['failures']} not 200"
                                    if found.get("failures") else "")
        row: dict[str, Any] = {"status": status, "reference": found["reference"]}
        if found["rounds"]:
            row.update(p50_ms=round(statistics.median(percentile(r, 50) for r in found["rounds"]), 2),
                       p99_ms=round(statistics.median(percentile(r, 99) for r in found["rounds"]), 2),
                       max_ms=round(max(max(r) for r in found["rounds"]), 2),
                       p99_rounds_ms=[round(percentile(r, 99), 2) for r in found["rounds"]],
                       requests=sum(len(r) for r in found["rounds"]))
        rows[name] = row
    for row in rows.values():
        reference = rows.get(row["reference"] or "", {})
        if "p99_ms" in row and "p99_ms" in reference:
            row["ratio"] = round(row["p99_ms"] / reference["p99_ms"], 2)
        if "p99_ms" in row and row["reference"] is not None:
            row["pass"] = row["p99_ms"] < GOAL_MS
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The markdown table: page, p50 ms, p99 ms, max ms, ratio to bare (p99 / its reference's)."""
    lines = ["| page | p50 ms | p99 ms | max ms | ratio to bare | p99 < 200 ms |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if "p99_ms" not in row:
            lines.append(f"| {name} | {row['status']} | | | | |")
            continue
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "reference"
        verdict = ("PASS" if row["pass"] else "FAIL") if "pass" in row else ""
        if row["status"] != "measured":
            verdict = f"{verdict} ({row['status']})".strip()
        lines.append(f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                     f"{row['max_ms']:.1f} | {ratio} | {verdict} |")
    lines.append("\nratio to bare: the page's p99 / the p99 of its reference, GET "
                 "/clinics/{c}/caseload (JSON) for the caseload pages, GET /episodes/{id} (JSON) "
                 "for the others")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint and round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--store", type=Path, default=None,
                        help="the store's folder (default var/bench/ui-<digest>)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/ui-pages.json"))
    parser.add_argument("--build-only", action="store_true", help="build the store, measure nothing")
    parser.add_argument("--catch-up", help=argparse.SUPPRESS)  # one read model (a build's process)
    args = parser.parse_args(argv)
    folder = args.store or Path("var/bench") / f"ui-{digest(args.episodes, args.seed)}"
    if args.catch_up:
        catch_up_one(folder, args.catch_up)
        return {}
    built = store(folder, args.episodes, args.seed)
    if args.build_only:
        return built
    rows = summarise(measure(folder, built, args.requests, args.repeat, args.seed))
    print(f"{built['episodes']:,} episodes ({BIG}: a tenth), {built['events']:,} events; "
          f"{args.requests} requests per endpoint and round, {args.repeat} rounds interleaved; "
          f"p50/p99 medians of the rounds, max of all")
    print(table(rows))
    pages = {n: r for n, r in rows.items() if r["reference"] is not None}
    for name, row in pages.items():
        verdict = ("PASS" if row["pass"] else "FAIL") if "pass" in row else row["status"]
        print(f"{verdict}: {name}" + (f" p99 {row['p99_ms']:.1f} ms" if "p99_ms" in row else ""))
    measured = [r for r in pages.values() if "ratio" in r]
    figures = {"bench": "bench.ui_pages", "episodes": built["episodes"],
               "events": built["events"], "build_seconds": built["build_seconds"],
               "requests": args.requests, "repeat": args.repeat, "goal_ms": GOAL_MS,
               "ratio": max((r["ratio"] for r in measured), default=None),
               "all_pass": all(r["pass"] for r in measured) if measured else None,
               "pages": rows, "peak_rss_mib": peak_rss_mib()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1))
    emit(figures)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
