"""What the access log costs a request: ``GET /health`` with the access log next to the same
route without it (bare), same machine, same run, interleaved rounds, medians of 3.

Run: ``.venv/bin/python -m bench.access_log [--clients 8] [--requests 200] [--repeat 3]``.

Starts two servers (uvicorn, one process each, SQLite in temporary folders): ``outcomes serve``,
which appends one access record per request (synchronously, before the answer is sent), and the
same app with ``AccessLogMiddleware`` taken out. Each round runs ``GET /health`` on one, then the
other (the order alternates); the figures are the medians over the rounds. Also times a bare
``AccessLog.record`` loop on a SQLite file: the append itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.api_load import free_port, percentile, phase


def serve_bare(folder: Path, port: int) -> None:
    """The service without its access-log middleware (benchmark only)."""
    from api import create_app
    from api.access import AccessLogMiddleware
    from api.serving import bind, run
    from bootstrap import Settings

    app = create_app(Settings(sqlite_path=folder / "outcomes.sqlite", log_level="WARNING"))
    app.user_middleware = [m for m in app.user_middleware
                           if getattr(m, "cls", None) is not AccessLogMiddleware]
    run(app, bind("127.0.0.1", port))


def start(folder: Path, port: int, bare: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(folder / "outcomes.sqlite"),
           "OUTCOMES_LOG_LEVEL": "WARNING"}
    command = ([sys.executable, "-m", "bench.access_log", "--serve-bare", str(folder), str(port)]
               if bare else [str(Path(sys.executable).with_name("outcomes")), "serve",
                             "--port", str(port)])
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("a server did not start within 30 s")


def in_process(rounds: int, requests: int) -> dict[str, list[float]]:
    """Median ``GET /health`` latency (ms) per round through the ASGI app itself (no TCP),
    sequential, logged and bare apps on SQLite files, interleaved rounds."""
    from fastapi.testclient import TestClient

    from api import create_app
    from api.access import AccessLogMiddleware
    from bootstrap import Settings, build

    medians: dict[str, list[float]] = {"logged": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        clients = {}
        for name in medians:
            settings = Settings(sqlite_path=Path(tmp) / name / "outcomes.sqlite",
                                log_level="WARNING", catch_up_interval=0)
            app = create_app(settings, services=build(settings))
            if name == "bare":
                app.user_middleware = [m for m in app.user_middleware
                                       if getattr(m, "cls", None) is not AccessLogMiddleware]
            clients[name] = TestClient(app).__enter__()
        for round_ in range(rounds):
            for name in (("logged", "bare") if round_ % 2 == 0 else ("bare", "logged")):
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    clients[name].get("/health")
                    times.append(1000 * (time.perf_counter() - started))
                medians[name].append(statistics.median(times))
        for client in clients.values():
            client.__exit__(None, None, None)
            client.app.state.services.close()  # type: ignore[attr-defined]
    return medians


def appends_per_second(folder: Path, count: int) -> float:
    from application.access_log import AccessLog
    from bootstrap import Settings
    from domain.access import Access

    log = AccessLog(Settings(sqlite_path=folder / "outcomes.sqlite")
                    .eventsourcing_env("access-log-bench"))
    access = Access("dr-lee", True, ("clinician",), ("clinic-a",), "clinic-a", "GET",
                    "/episodes/{episode_id}", None, None, None, 200, datetime.now(UTC),
                    "req", "127.0.0.1")
    started = time.perf_counter()
    for _ in range(count):
        log.record(access)
    elapsed = time.perf_counter() - started
    log.close()
    return count / elapsed


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        serve_bare(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client and round")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float, float]]] = {"logged": [], "bare": []}
    with tempfile.TemporaryDirectory() as logged_dir, tempfile.TemporaryDirectory() as bare_dir:
        ports = {"logged": free_port(), "bare": free_port()}
        servers = {"logged": start(Path(logged_dir), ports["logged"], bare=False),
                   "bare": start(Path(bare_dir), ports["bare"], bare=True)}
        try:
            for round_ in range(args.repeat):
                for name in (("logged", "bare") if round_ % 2 == 0 else ("bare", "logged")):
                    url = f"http://127.0.0.1:{ports[name]}/health"

                    def get(client: httpx.Client, _i: int, _n: int, url: str = url) -> httpx.Response:
                        return client.get(url)
                    rps, latencies = phase(args.clients, args.requests, get)
                    figures[name].append((rps, percentile(latencies, 50),
                                          percentile(latencies, 99)))
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=30)
        appends = appends_per_second(Path(logged_dir), 500)
    asgi = in_process(args.repeat, args.requests)
    print(f"GET /health, uvicorn 1 process, SQLite; {args.clients} clients x {args.requests} "
          f"requests, {args.repeat} interleaved rounds, medians")
    print(f"{'server':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s vs bare':>15}")
    bare_rps = statistics.median(f[0] for f in figures["bare"])
    for name in ("bare", "logged"):
        rps, p50, p99 = (statistics.median(f[k] for f in figures[name]) for k in range(3))
        print(f"{name:<8}{rps:>9,.0f}{p50:>9.1f}{p99:>9.1f}{rps / bare_rps:>15.2f}")
    logged, bare = (statistics.median(asgi[n]) for n in ("logged", "bare"))
    print(f"in process (ASGI, no TCP), sequential, median ms per request: bare {bare:.2f}, "
          f"logged {logged:.2f} (+{logged - bare:.2f} ms)")
    print(f"AccessLog.record alone (sequential, SQLite file): {appends:,.0f}/s "
          f"({1000 / appends:.2f} ms each)")


if __name__ == "__main__":
    main()
