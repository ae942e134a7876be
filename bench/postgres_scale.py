"""Outcome Ledger at scale on PostgreSQL 15 (issue 10): generation, appends, catch-up, reads, size.

Run: ``.venv/bin/python -m bench.postgres_scale --episodes 10000 [--large 1000000]`` (``make
bench`` runs it small). It starts its own throwaway cluster with the functions of
``tests/support/pg_cluster.py`` but, unlike the test clusters, with ``fsync = on``,
``full_page_writes = on`` and ``synchronous_commit = on`` (printed from ``SHOW``), then:

1. ``outcomes db init``; a template set of episodes (Opened, 10 weekly PHQ-9
   AssessmentRecorded, the stage events they cause, Closed: 12-14 events) is recorded by the
   real ``OutcomesApplication`` on an in-memory store; its stored events are COPYed (psycopg,
   binary) into the PostgreSQL events table with fresh originator ids (and fresh assessment and
   stage ids inside the states), interleaved week by week across each chunk of episodes;
   notification ids come from the table's sequence. Stops at ``--generate-budget`` seconds.
2. Catch-up rate per read model: ``outcomes projections run NAME`` alone, from zero to lag 0
   (store events scanned per second of wall time, start-up included).
3. ``GET /episodes/{id}/stages`` p50/p99 (2 API workers, 8 client threads, random episodes).
4. Appends: ``POST /episodes/{id}/assessments`` from 16 client threads (dev token) against
   ``outcomes serve --workers W`` next to the raw library with W writer processes (get + one
   event + save of a bare aggregate), W = 1, 2, 4, interleaved, ``--repeat`` rounds; medians
   (min-max). No runners run during this phase.
5. Freshness after a burst: with the four runners running, ``--burst`` events are COPYed at
   once; then one assessment is POSTed and its episode read (GET /episodes/{id}) without and
   with ``X-Min-Position`` of that write: status and seconds of each, and the seconds until
   the read with the header answers 200.
6. Bytes per event: ``pg_total_relation_size`` of the events table and the sum over each read
   model's schema, divided by the events stored.
7. With ``--large N``: the store is extended to N episodes (same budget), the stages read model
   caught up, and step 3 repeated; the ratio of p50 and p99 to the small size is printed.

The last line is one summary line of ratios. Figures are also written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from eventsourcing.application import Application
from psycopg import sql

from bench.api_load import percentile, phase
from bench.record_assessments import Counter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
import pg_cluster  # noqa: E402  (standard library only; the test clusters' functions)

START = date(2020, 1, 6)
NOW = datetime(2027, 1, 1, tzinfo=UTC)
CLINIC = "bench"
SCHEMA = "public"
DBNAME = "outcomes"
READ_MODELS = ("episodes", "stages", "audit", "cohort")
BENCH_SETTINGS = {  # the benchmark cluster: durable, unlike the test clusters
    "fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
    "shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "15min",
    "wal_level": "minimal", "max_wal_senders": "0",
}
OUTCOMES = str(Path(sys.executable).with_name("outcomes"))
UUID_HEAD = re.compile(rb"[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


# -- cluster and settings ------------------------------------------------------------------------

def durable_cluster() -> pg_cluster.Cluster:
    """A throwaway cluster (pg_cluster.Cluster) restarted with BENCH_SETTINGS."""
    cluster = pg_cluster.Cluster.create()
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.writelines(f"{name} = '{value}'\n" for name, value in BENCH_SETTINGS.items())
    cluster.restart()
    return cluster


def environment(host: str, port: int, folder: Path) -> dict[str, str]:
    return {**os.environ, "OUTCOMES_STORE": "postgres", "OUTCOMES_POSTGRES_HOST": host,
            "OUTCOMES_POSTGRES_PORT": str(port), "OUTCOMES_POSTGRES_USER": "postgres",
            "OUTCOMES_POSTGRES_DBNAME": DBNAME, "OUTCOMES_POSTGRES_PASSWORD": "",
            "OUTCOMES_POSTGRES_SCHEMA": SCHEMA, "OUTCOMES_SQLITE_PATH": str(folder / "o.sqlite"),
            "OUTCOMES_LOG_LEVEL": "WARNING", "OUTCOMES_RATE_LIMIT": "off"}


def settings_of(env: dict[str, str]) -> Any:
    from bootstrap import Settings
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- generation ---------------------------------------------------------------------------------

def trajectories(count: int, rng: random.Random) -> list[tuple[int, ...]]:
    """``count`` courses of 10 weekly PHQ-9 totals: responders, remitters, non-responders."""
    courses = []
    for n in range(count):
        first = rng.randint(12, 24)
        kind = n % 3
        end = {0: rng.randint(2, 4), 1: rng.randint(5, 11), 2: first - rng.randint(0, 4)}[kind]
        courses.append(tuple(max(0, min(27, round(first + (end - first) * w / 9)
                                        + rng.randint(-1, 1))) for w in range(10)))
    return courses


def template_events(count: int) -> list[list[tuple[int, str, list[bytes]]]]:
    """The stored events of ``count`` template episodes written by OutcomesApplication (memory
    store): per episode [(originator_version, topic, state split at each UUID's first 8 hex
    digits)]."""
    from application.outcomes import OutcomesApplication

    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: NOW)
    rng = random.Random(10)
    for n, course in enumerate(trajectories(count, rng)):
        opened = app.open_episode(patient_ref=f"bench-{n}", clinic_id=CLINIC, recorded_by="bench",
                                  criteria=("acnp2006", "frank1991")[n % 2], opened_on=START)
        for week, total in enumerate(course):
            app.record_assessment(opened.episode_id, instrument="PHQ-9", total=total,
                                  administered=START + timedelta(weeks=week), recorded_by="bench")
        app.close_episode(opened.episode_id, discharged_on=START + timedelta(weeks=11),
                          recorded_by="bench")
    episodes: dict[Any, list[tuple[int, str, list[bytes]]]] = {}
    for item in app.recorder.select_notifications(start=1, limit=10**6):
        episodes.setdefault(item.originator_id, []).append(
            (item.originator_version, item.topic, UUID_HEAD.split(item.state)))
    app.close()
    return list(episodes.values())


class Generator:
    """COPYs template episodes with fresh ids into the events table; ``sample`` keeps up to
    5,000 ids of generated episodes (uniformly, a reservoir)."""

    def __init__(self, dsn: str, templates: list[list[tuple[int, str, list[bytes]]]]) -> None:
        self.dsn = dsn
        self.templates = templates
        self.episodes = 0
        self.events = 0
        self.sample: list[uuid.UUID] = []
        self.rng = random.Random(11)

    def _rows(self, first: int, count: int) -> Iterator[tuple[uuid.UUID, int, str, bytes]]:
        chunk = []
        for n in range(first, first + count):
            episode_id = uuid.uuid4()
            chunk.append((episode_id, self.templates[n % len(self.templates)],
                          f"{n % 16**8:08x}".encode()))
            seen = n + 1
            if len(self.sample) < 5000:
                self.sample.append(episode_id)
            elif (k := self.rng.randrange(seen)) < 5000:
                self.sample[k] = episode_id
        for week in range(max(len(t) for t in self.templates)):
            for episode_id, template, head in chunk:
                if week < len(template):
                    version, topic, parts = template[week]
                    yield episode_id, version, topic, head.join(parts)

    def add(self, episodes: int, budget_s: float, chunk: int = 2000) -> float:
        """COPY ``episodes`` more episodes (one transaction per ``chunk``) or as many as fit in
        ``budget_s`` seconds; returns the seconds taken."""
        started = time.perf_counter()
        statement = sql.SQL("COPY {}.outcomes_events (originator_id, originator_version, topic, "
                            "state) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(SCHEMA))
        target = self.episodes + episodes
        with psycopg.connect(self.dsn) as conn:
            while self.episodes < target and time.perf_counter() - started < budget_s:
                count = min(chunk, target - self.episodes)
                with conn.cursor() as cur, cur.copy(statement) as copy:
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in self._rows(self.episodes, count):
                        copy.write_row(row)
                        self.events += 1
                conn.commit()
                self.episodes += count
        return time.perf_counter() - started


# -- processes and HTTP -------------------------------------------------------------------------

def free_port() -> int:
    return int(pg_cluster.free_port())


class Server:
    """``outcomes serve --workers W`` in its own session; ``stop`` ends that session."""

    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # kept open for the life of the server (its stderr)
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="bench-serve-", suffix=".log", delete=False)
        self.process = subprocess.Popen([OUTCOMES, "serve", "--workers", str(workers), "--port",
                                         str(self.port)], env=env, start_new_session=True,
                                        stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code in (200, 503):
                    time.sleep(0.5 * workers)  # every worker up
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        tail = Path(self.log.name).read_text(errors="replace")[-1500:]
        raise SystemExit(f"outcomes serve did not start within 60 s; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def token(env: dict[str, str]) -> str:
    return subprocess.run([OUTCOMES, "dev-token", "--sub", "bench", "--role", "clinician",
                           "--clinic", CLINIC, "--ttl", "86400"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


# -- measurements -------------------------------------------------------------------------------

def catch_up(env: dict[str, str], name: str, services: Any, budget_s: float) -> dict[str, Any]:
    """``outcomes projections run NAME`` alone from its current position until lag 0 (or the
    budget): store events scanned per second of wall time."""
    models = services.read_models
    last = services.app.recorder.max_notification_id() or 0
    first = models.position(name)
    started = time.perf_counter()
    runner = subprocess.Popen([OUTCOMES, "projections", "run", name], env=env,
                              start_new_session=True)
    try:
        while time.perf_counter() - started < budget_s:
            time.sleep(0.5)
            if models.lag(name) == 0:
                break
            if runner.poll() is not None:
                raise SystemExit(f"projections run {name} exited {runner.returncode}")
        elapsed = time.perf_counter() - started
        done = models.position(name)
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
    complete = models.lag(name) == 0
    scanned = (last if complete else done) - first
    return {"events": scanned, "seconds": round(elapsed, 1), "complete": complete,
            "events_per_s": round(scanned / elapsed)}


def stages_latency(env: dict[str, str], ids: list[uuid.UUID], bearer: str,
                   requests: int = 250, clients: int = 8) -> dict[str, float]:
    server = Server(env, 2)
    rng = random.Random(12)
    picks = [[rng.choice(ids) for _ in range(requests)] for _ in range(clients)]
    try:
        rps, lat = phase(clients, requests, lambda c, i, n: c.get(
            f"{server.base}/episodes/{picks[i][n]}/stages"), {"Authorization": f"Bearer {bearer}"},
            timeout=60)
    finally:
        server.stop()
    return {"p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
            "req_per_s": round(rps), "requests": len(lat)}


def open_episodes(env: dict[str, str], count: int) -> list[uuid.UUID]:
    """``count`` open episodes through the library on the benchmark store."""
    from application.outcomes import OutcomesApplication
    app = OutcomesApplication(settings_of(env).eventsourcing_env(), clock=lambda: NOW)
    try:
        return [app.open_episode(patient_ref=f"append-{n}", clinic_id=CLINIC, recorded_by="bench",
                                 opened_on=START).episode_id for n in range(count)]
    finally:
        app.close()


def api_appends(env: dict[str, str], workers: int, bearer: str, clients: int,
                requests: int) -> float:
    per_client = max(1, requests // 10)
    ids = open_episodes(env, clients * per_client)
    server = Server(env, workers)
    try:
        rps, _ = phase(clients, requests, lambda c, i, n: c.post(
            f"{server.base}/episodes/{ids[i * per_client + n % per_client]}/assessments",
            json={"instrument": "PHQ-9", "total": max(0, 20 - 2 * (n // per_client)),
                  "administered_on": str(START + timedelta(weeks=n // per_client))}),
            {"Authorization": f"Bearer {bearer}"}, timeout=60)
    finally:
        server.stop()
    return rps


class BareBench(Application[uuid.UUID]):
    """The raw library: a bare aggregate's events in their own table (barebench_events)."""

    name = "BareBench"


def _library_writer(library_env: dict[str, str], commands: int, ready: Any, go: Any,
                    done: Any) -> None:
    app = BareBench(library_env)
    aggregates = [Counter() for _ in range(max(1, commands // 10))]
    app.save(*aggregates)
    ids = [a.id for a in aggregates]
    ready.release()
    go.wait()
    for n in range(commands):
        aggregate: Counter = app.repository.get(ids[n % len(ids)])
        aggregate.increment(by=1)
        app.save(aggregate)
    done.release()
    app.close()


def library_appends(env: dict[str, str], workers: int, total: int) -> float:
    """``total`` commands (get + one event + save) split over ``workers`` processes: per second."""
    library_env = {**settings_of(env).eventsourcing_env(create_table=True),
                   "POSTGRES_POOL_SIZE": "1"}
    BareBench(library_env).close()  # the table, before the writers start
    library_env["CREATE_TABLE"] = "n"  # concurrent CREATE TABLE IF NOT EXISTS can fail
    context = multiprocessing.get_context("spawn")  # no inherited pool locks
    ready, done, go = context.Semaphore(0), context.Semaphore(0), context.Event()
    processes = [context.Process(target=_library_writer, args=(
        library_env, total // workers, ready, go, done)) for _ in range(workers)]
    for p in processes:
        p.start()
    for _ in processes:
        if not ready.acquire(timeout=120):
            raise SystemExit("a library writer did not start")
    started = time.perf_counter()
    go.set()
    for _ in processes:
        if not done.acquire(timeout=900):
            raise SystemExit("a library writer did not finish")
    elapsed = time.perf_counter() - started
    for p in processes:
        p.join()
    return (total // workers) * workers / elapsed


def burst(env: dict[str, str], generator: Generator, services: Any, bearer: str,
          events: int) -> dict[str, Any]:
    """Runners running; COPY ``events`` at once; then one write and reads of its episode."""
    (episode_id,) = open_episodes(env, 1)
    runners = [subprocess.Popen([OUTCOMES, "projections", "run", name], env=env,
                                start_new_session=True) for name in READ_MODELS]
    server = Server(env, 2)
    auth = {"Authorization": f"Bearer {bearer}"}
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 600
        while any(services.read_models.lag(n) for n in READ_MODELS):
            if time.monotonic() > deadline:
                raise SystemExit("runners did not catch up before the burst within 600 s")
            time.sleep(0.5)
        before = generator.events
        result["copy_s"] = round(generator.add(-(-events // 14), 3600), 1)
        result["events"] = generator.events - before
        with httpx.Client(base_url=server.base, headers=auth, timeout=60) as client:
            written = client.post(f"/episodes/{episode_id}/assessments", json={
                "instrument": "PHQ-9", "total": 19, "administered_on": str(START)})
            position = int(written.headers["X-Ledger-Position"])
            for label, headers in (("plain", {}), ("min_position", {"X-Min-Position": str(position)})):
                started = time.perf_counter()
                answer = client.get(f"/episodes/{episode_id}", headers=headers)
                result[label] = {"status": answer.status_code,
                                 "seconds": round(time.perf_counter() - started, 3)}
            started = time.perf_counter()
            while client.get(f"/episodes/{episode_id}",
                             headers={"X-Min-Position": str(position)}).status_code != 200:
                if time.perf_counter() - started > 900:
                    break
            result["fresh_after_s"] = round(time.perf_counter() - started, 1)
    finally:
        server.stop()
        for r in runners:
            os.killpg(r.pid, signal.SIGTERM)
        for r in runners:
            r.wait(timeout=60)
    return result


def sizes(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        events = conn.execute(sql.SQL("SELECT count(*) FROM {}.outcomes_events").format(
            sql.Identifier(SCHEMA))).fetchone()[0]  # type: ignore[index]
        store = conn.execute("SELECT pg_total_relation_size(%s)",
                             (f"{SCHEMA}.outcomes_events",)).fetchone()[0]  # type: ignore[index]
        rows = conn.execute(
            "SELECT n.nspname, sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "GROUP BY n.nspname ORDER BY 1").fetchall()
    return {"events": events, "store_bytes": store, "store_bytes_per_event": round(store / events),
            "schemas": {name: {"bytes": size, "bytes_per_event": round(size / events, 1)}
                        for name, size in rows}}


# -- main ---------------------------------------------------------------------------------------

def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10000)
    parser.add_argument("--large", type=int, default=0, help="extend to this many episodes")
    parser.add_argument("--generate-budget", type=float, default=1800, help="seconds")
    parser.add_argument("--catchup-budget", type=float, default=1800, help="seconds per model")
    parser.add_argument("--templates", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40, help="per client and append phase")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--burst", type=int, default=100000, help="events")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only-stages", action="store_true",
                        help="only generation, the stages read model and GET stages at both sizes")
    parser.add_argument("--only-generate", action="store_true",
                        help="generate --episodes, print the rate and the sizes, stop")
    args = parser.parse_args()
    from bootstrap import build

    out: dict[str, Any] = {}
    cluster = durable_cluster()
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    try:
        admin = cluster.dsn()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
            shown = {n: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0]  # type: ignore[index]
                     for n in ("server_version", "fsync", "synchronous_commit",
                               "full_page_writes", "shared_buffers")}
        out["server"] = shown
        print(f"PostgreSQL {shown['server_version']} on {cluster.host}:{cluster.port}: fsync "
              f"{shown['fsync']}, synchronous_commit {shown['synchronous_commit']}, "
              f"full_page_writes {shown['full_page_writes']}, shared_buffers "
              f"{shown['shared_buffers']}; {os.cpu_count()} cores", flush=True)
        env = environment(cluster.host, cluster.port, folder)
        subprocess.run([OUTCOMES, "db", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        dsn = cluster.dsn(DBNAME)
        bearer = token(env)

        templates = template_events(args.templates)
        per = sum(map(len, templates)) / len(templates)
        print(f"templates: {len(templates)} episodes, {per:.1f} events each", flush=True)
        generator = Generator(dsn, templates)
        seconds = generator.add(args.episodes, args.generate_budget)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
        out["small"] = {"episodes": generator.episodes, "events": generator.events,
                        "generate_s": round(seconds, 1),
                        "generate_events_per_s": round(generator.events / seconds)}
        print(f"generated {generator.episodes:,} episodes, {generator.events:,} events in "
              f"{seconds:.1f} s ({generator.events / seconds:,.0f} events/s, COPY)", flush=True)
        small_ids = list(generator.sample)
        if args.only_generate:
            print(f"sizes: {json.dumps(sizes(dsn))}")
            print(f"summary: {generator.events / seconds:,.0f} events/s generated; "
                  f"{generator.episodes:,} episodes in {seconds:.0f} s")
            return

        services = build(settings_of(env))
        try:
            rates = {name: catch_up(env, name, services, args.catchup_budget)
                     for name in (("stages",) if args.only_stages else READ_MODELS)}
            out["small"]["catch_up"] = rates
            for name, rate in rates.items():
                print(f"catch-up {name:<9}{rate['events_per_s']:>8,} events/s "
                      f"({rate['events']:,} events, {rate['seconds']} s"
                      f"{'' if rate['complete'] else ', budget reached'})", flush=True)
            small_stages = stages_latency(env, small_ids, bearer)
            out["small"]["stages"] = small_stages
            print(f"GET stages at {generator.episodes:,} episodes: p50 {small_stages['p50_ms']} ms, "
                  f"p99 {small_stages['p99_ms']} ms ({small_stages['req_per_s']} req/s)", flush=True)

            workers = [int(w) for w in args.workers.split(",")]
            api: dict[int, list[float]] = {w: [] for w in workers}
            lib: dict[int, list[float]] = {w: [] for w in workers}
            for _ in range(0 if args.only_stages else args.repeat):
                for w in workers:
                    api[w].append(api_appends(env, w, bearer, args.clients, args.requests))
                    lib[w].append(library_appends(env, w, args.clients * args.requests))
                    print(f"  appends W={w}: API {api[w][-1]:,.0f}/s, library {lib[w][-1]:,.0f}/s",
                          flush=True)
            out["appends"] = {str(w): {"api": api[w], "library": lib[w]} for w in workers}
            print(f"appends, {args.clients} client threads x {args.requests} POSTs per phase; "
                  f"library: W processes x {args.clients * args.requests // 1} commands in all; "
                  f"median of {args.repeat} (min-max)")
            for w in workers if not args.only_stages else []:
                ratio = statistics.median(api[w]) / statistics.median(lib[w])
                print(f"  W={w}: API {median_range(api[w])}/s, library {median_range(lib[w])}/s, "
                      f"API/library {ratio:.2f}")

            try:
                if args.only_stages:
                    raise RuntimeError("skipped (--only-stages)")
                out["burst"] = burst(env, generator, services, bearer, args.burst)
            except Exception as exc:  # report it and go on to the sizes
                out["burst"] = {"error": repr(exc)}
            print(f"burst: {out['burst']}", flush=True)
            out["small"]["sizes"] = sizes(dsn)
            print(f"sizes: {json.dumps(out['small']['sizes'])}", flush=True)

            if args.large > generator.episodes:
                seconds = generator.add(args.large - generator.episodes, args.generate_budget)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("ANALYZE")
                out["large"] = {"episodes": generator.episodes, "events": generator.events,
                                "generate_s": round(seconds, 1)}
                print(f"extended to {generator.episodes:,} episodes, {generator.events:,} events "
                      f"(+{seconds:.0f} s)", flush=True)
                out["large"]["catch_up_stages"] = catch_up(env, "stages", services,
                                                           args.catchup_budget)
                print(f"catch-up stages: {out['large']['catch_up_stages']}", flush=True)
                ids = generator.sample
                if not out["large"]["catch_up_stages"]["complete"]:
                    ids = small_ids  # only these are surely in the view
                out["large"]["stages"] = stages_latency(env, ids, bearer)
                out["large"]["sizes"] = sizes(dsn)
                print(f"GET stages at {generator.episodes:,} episodes: {out['large']['stages']}")
                print(f"sizes: {json.dumps(out['large']['sizes'])}", flush=True)
        finally:
            services.close()
    finally:
        cluster.destroy()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    summary = [f"api/library W{w} {statistics.median(api[w]) / statistics.median(lib[w]):.2f}"
               for w in workers if api[w]]
    if api[workers[0]]:
        scaling = statistics.median(api[workers[-1]]) / statistics.median(api[workers[0]])
        summary.append(f"api W{workers[-1]}/W{workers[0]} {scaling:.2f}")
    if "large" in out:
        s, big = out["small"]["stages"], out["large"]["stages"]
        summary.append(f"stages p50 {big['p50_ms'] / s['p50_ms']:.2f} p99 "
                       f"{big['p99_ms'] / s['p99_ms']:.2f} ({out['large']['episodes']:,} vs "
                       f"{out['small']['episodes']:,} episodes)")
    b = out["burst"]
    if "error" not in b:
        summary.append(f"burst read {b['plain']['seconds']:.2f}s/{b['min_position']['seconds']:.2f}s "
                   f"(status {b['plain']['status']}/{b['min_position']['status']})")
    print("summary: " + "; ".join(summary))


if __name__ == "__main__":
    main()
