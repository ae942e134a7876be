"""HTTP load on loopback: POST assessments and GET stages next to GET /health, same server, same run.

Run: ``make bench`` or ``.venv/bin/python -m bench.api_load [--clients 16] [--requests 100]
[--repeat 3] [--workers 2] [--synchronous NORMAL]``.

Starts ``outcomes serve`` (uvicorn, one process, SQLite in a temporary folder) on a free
127.0.0.1 port, opens ``--requests``/10 episodes per client (a course of 10 weekly PHQ-9s
each, as in practice), then runs three phases, each with ``--clients``
concurrent clients (threads with their own ``httpx.Client``) sending ``--requests`` requests
each: ``GET /health`` (the bare endpoint: no store write, no read model), ``POST
/episodes/{id}/assessments`` (one weekly PHQ-9 per request), ``GET /episodes/{id}/stages``.
The three phases are interleaved ``--repeat`` times (A B C A B C ...). Prints requests per second
(medians), p50 and p99 latency (ms, over all repeats) and the ratio of each to ``/health``; the last
line is one JSON object (``bench.figures``): POST ÷ GET /health, with the server's peak RSS.
Every loop is bounded by its request count; the server is stopped at the end.

``--workers N`` (N > 1) measures scaling too: a second server, ``outcomes serve --workers N``
on a store of its own (with the ``outcomes projections run`` process serve starts on SQLite),
gets the same POST phase, interleaved with the one-worker phases (A B C D A B C D ...);
``workers_ratio`` is its POST rate ÷ the one-worker POST rate (medians; min-max of the pairs).

``--synchronous NORMAL`` (bench only, never a default: an acknowledged write could be lost at a
power cut) runs the POST phase a third time per repeat against a one-worker server whose SQLite
connections commit with ``PRAGMA synchronous=NORMAL`` (WAL: no fsync per commit): the upper bound
of what group commit (one fsync for several writers' transactions) could give on this store
(``sync_ratio``: its POST rate ÷ the ``FULL`` one; ADR 0029).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.figures import emit, line

START = date(2000, 1, 3)  # weekly dates from here stay in the past for any request count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OUTCOMES = str(Path(sys.executable).with_name("outcomes"))


def server_env(folder: Path) -> dict[str, str]:
    """The environment of a benchmark server on a SQLite store in ``folder`` (development
    mode: its dev issuer's key lies there too)."""
    return {**os.environ, "OUTCOMES_SQLITE_PATH": str(folder / "outcomes.sqlite"),
            "OUTCOMES_LOG_LEVEL": "WARNING", "OUTCOMES_RATE_LIMIT": "off"}  # throughput


def bearer(folder: Path, clinic: str = "bench") -> dict[str, str]:
    """An ``Authorization`` header with a clinician's dev token of ``clinic`` for the server on
    ``folder`` (``outcomes dev-token``, valid a day)."""
    token = subprocess.run([OUTCOMES, "dev-token", "--sub", "bench", "--role", "clinician",
                            "--clinic", clinic, "--ttl", "86400"], env=server_env(folder),
                           check=True, capture_output=True, text=True).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def start_server(folder: Path, port: int, workers: int = 1,
                 synchronous: str | None = None) -> subprocess.Popen[bytes]:
    """``outcomes serve`` with ``workers`` processes on a SQLite store in ``folder``, waited for
    until ``/health`` answers (SystemExit after 30 s). ``synchronous`` (bench only): the
    server runs through ``bench.sqlite_synchronous``, its SQLite connections set to it."""
    command = ([sys.executable, "-m", "bench.sqlite_synchronous", synchronous]
               if synchronous else [OUTCOMES])
    server = subprocess.Popen([*command, "serve", "--port", str(port), "--workers", str(workers)],
                              env=server_env(folder), stderr=subprocess.DEVNULL,
                              cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not start within 30 s")


def phase(clients: int, requests: int,
          call: Callable[[httpx.Client, int, int], httpx.Response],
          headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[float, list[float]]:
    """Run ``requests`` calls in each of ``clients`` threads (each its own ``httpx.Client``
    with ``headers``), timed from the moment every client is ready; returns (requests/s,
    latencies in ms). Raises SystemExit naming a failed (4xx/5xx) request."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    ready = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            ready.wait()
            for n in range(requests):
                started = time.perf_counter()
                response = call(client, index, n)
                latencies[index].append(1000 * (time.perf_counter() - started))
                if response.status_code >= 400:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, e.g. {failures[0]}")
    flat = [x for per_client in latencies for x in per_client]
    return len(flat) / elapsed, flat


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def server_peak_rss_mib(pid: int) -> float | None:
    """The server's peak resident memory (``VmHWM`` of /proc), MiB; None where unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return None if kib is None else round(kib / 1024, 1)


def _versus(rates: dict[str, list[float]], name: str, key: str) -> dict[str, Any]:
    """``{key}``, ``{key}_min``, ``{key}_max``: ``name``'s POST rate ÷ the one-worker POST
    rate (medians; min-max of the interleaved pairs); nothing when ``name`` was not run."""
    if name not in rates:
        return {}
    one, other = rates["POST assessments"], rates[name]
    pairs = [o / b for b, o in zip(one, other, strict=True)]
    return {key: round(statistics.median(other) / statistics.median(one), 3),
            f"{key}_min": round(min(pairs), 3), f"{key}_max": round(max(pairs), 3)}


def figures(results: dict[str, list[tuple[float, list[float]]]], clients: int, requests: int,
            server_rss: float | None, workers: int = 1) -> dict[str, Any]:
    """The JSON last line: POST assessments / GET /health, with every endpoint's medians; with
    several workers ``workers_ratio`` (POST with ``workers`` ÷ POST with one), with the
    ``synchronous=NORMAL`` phase ``sync_ratio`` (POST NORMAL ÷ POST FULL)."""
    rates = {name: [rps for rps, _ in runs] for name, runs in results.items()}
    latencies = {name: [x for _, flat in runs for x in flat] for name, runs in results.items()}
    return line("bench.api_load", rates["GET /health"], rates["POST assessments"],
                baseline_name="GET /health", workload_name="POST /episodes/{id}/assessments",
                clients=clients, requests=requests, workers=workers,
                **_versus(rates, f"POST, {workers} workers", "workers_ratio"),
                **_versus(rates, "POST, synchronous=NORMAL", "sync_ratio"),
                per_second={k: round(statistics.median(v), 1) for k, v in rates.items()},
                p50_ms={k: round(percentile(v, 50), 1) for k, v in latencies.items()},
                p99_ms={k: round(percentile(v, 99), 1) for k, v in latencies.items()},
                server_peak_rss_mib=server_rss)


def post_week(base: str, episodes: list[list[str]],
              first_week: int) -> Callable[[httpx.Client, int, int], httpx.Response]:
    """The POST of request ``n`` of client ``i``: its episode's next weekly PHQ-9 from
    ``first_week`` on."""
    per_client = len(episodes[0])

    def post(client: httpx.Client, i: int, n: int) -> httpx.Response:
        return client.post(
            f"{base}/episodes/{episodes[i][n % per_client]}/assessments",
            json={"instrument": "PHQ-9", "total": max(0, 20 - 2 * (n // per_client)),
                  "administered_on": str(START + timedelta(weeks=first_week + n // per_client))})
    return post


def open_episodes(base: str, auth: dict[str, str], clients: int, per_client: int) -> list[list[str]]:
    """``per_client`` new episodes for each client, by client."""
    return [[httpx.post(f"{base}/episodes", headers=auth, json={
        "patient_ref": f"bench-{i}-{k}", "clinic_id": "bench", "opened_on": str(START)
    }).json()["episode_id"] for k in range(per_client)] for i in range(clients)]


def run_phases(base: str, auth: dict[str, str], clients: int, requests: int, repeat: int,
               others: dict[str, tuple[str, dict[str, str]]] | None = None
               ) -> dict[str, list[tuple[float, list[float]]]]:
    """Open the episodes, then GET /health, POST assessments and GET stages, interleaved
    (A B C A B C ...) ``repeat`` times; each repeat posts the next weeks of every course.
    ``others`` (name: base URL and auth of another server) get the POST phase too, after the
    one-worker phases of each repeat (A B C D ...)."""
    per_client = max(1, requests // 10)
    weeks = -(-requests // per_client)
    episodes = open_episodes(base, auth, clients, per_client)
    more = {name: (url, headers, open_episodes(url, headers, clients, per_client))
            for name, (url, headers) in (others or {}).items()}
    results: dict[str, list[tuple[float, list[float]]]] = {
        "GET /health": [], "POST assessments": [], "GET stages": [], **{n: [] for n in more}}
    for r in range(repeat):
        results["GET /health"].append(phase(clients, requests,
                                            lambda c, i, n: c.get(f"{base}/health"), auth))
        results["POST assessments"].append(
            phase(clients, requests, post_week(base, episodes, r * weeks), auth))
        results["GET stages"].append(phase(clients, requests, lambda c, i, n: c.get(
            f"{base}/episodes/{episodes[i][n % per_client]}/stages"), auth))
        for name, (url, headers, theirs) in more.items():
            results[name].append(phase(clients, requests, post_week(url, theirs, r * weeks),
                                       headers))
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="per client and phase")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1,
                        help="also POST to a server with this many worker processes")
    parser.add_argument("--synchronous", choices=["NORMAL", "OFF"],
                        help="also POST to a server on this SQLite synchronous (bench only)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, dict[str, str]]] = {}

        def serve(name: str, workers: int = 1, synchronous: str | None = None) -> int:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            port = free_port()
            server = start_server(folder, port, workers, synchronous)
            stack.callback(stop, server)
            servers[name] = (f"http://127.0.0.1:{port}", bearer(folder))
            return server.pid

        pid = serve("one")
        if args.workers > 1:
            serve(f"POST, {args.workers} workers", args.workers)
        if args.synchronous:
            serve(f"POST, synchronous={args.synchronous}", 1, args.synchronous)
        base, auth = servers.pop("one")
        results = run_phases(base, auth, args.clients, args.requests, args.repeat, servers)
        server_rss = server_peak_rss_mib(pid)
    result = figures(results, args.clients, args.requests, server_rss, args.workers)
    print(f"uvicorn, SQLite; {args.clients} clients x {args.requests} requests per phase, "
          f"loopback; interleaved, median of {args.repeat}")
    print(f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s vs /health':>18}")
    health = result["per_second"]["GET /health"]
    for name, rps in result["per_second"].items():
        print(f"{name:<28}{rps:>9,.0f}{result['p50_ms'][name]:>9.1f}"
              f"{result['p99_ms'][name]:>9.1f}{rps / health:>18.2f}")
    for key in ("workers_ratio", "sync_ratio"):
        if key in result:
            print(f"{key}: {result[key]:.2f} ({result[key + '_min']:.2f}-"
                  f"{result[key + '_max']:.2f})")
    emit(result)
    return result


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server (SIGTERM; its workers and runner with it) and wait for it."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
