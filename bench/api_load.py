"""HTTP load on loopback: POST assessments and GET stages next to GET /health, same server, same run.

Run: ``make bench-api`` or ``.venv/bin/python -m bench.api_load [--clients 16] [--requests 100]``.

Starts ``outcomes serve`` (uvicorn, one process, SQLite in a temporary folder) on a free
127.0.0.1 port, opens ``--requests``/10 episodes per client (a course of 10 weekly PHQ-9s
each, as in practice), then runs three phases, each with ``--clients``
concurrent clients (threads with their own ``httpx.Client``) sending ``--requests`` requests
each: ``GET /health`` (the bare endpoint: no store write, no read model), ``POST
/episodes/{id}/assessments`` (one weekly PHQ-9 per request), ``GET /episodes/{id}/stages``.
Prints requests per second, p50 and p99 latency (ms) and the ratio of each to ``/health``.
Every loop is bounded by its request count; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
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

import httpx

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


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([OUTCOMES, "serve", "--port", str(port)], env=server_env(folder),
                              stderr=subprocess.DEVNULL)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="per client and phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp), port)
        base = f"http://127.0.0.1:{port}"
        auth = bearer(Path(tmp))
        try:
            per_client = max(1, args.requests // 10)
            episodes = [[httpx.post(f"{base}/episodes", headers=auth, json={
                "patient_ref": f"bench-{i}-{k}", "clinic_id": "bench", "opened_on": str(START)
            }).json()["episode_id"] for k in range(per_client)] for i in range(args.clients)]
            results = {
                "GET /health": phase(args.clients, args.requests,
                                     lambda c, i, n: c.get(f"{base}/health"), auth),
                "POST assessments": phase(args.clients, args.requests, lambda c, i, n: c.post(
                    f"{base}/episodes/{episodes[i][n % per_client]}/assessments",
                    json={"instrument": "PHQ-9", "total": max(0, 20 - 2 * (n // per_client)),
                          "administered_on": str(START + timedelta(weeks=n // per_client))}),
                    auth),
                "GET stages": phase(args.clients, args.requests, lambda c, i, n: c.get(
                    f"{base}/episodes/{episodes[i][n % per_client]}/stages"), auth),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
    health_rps = results["GET /health"][0]
    print(f"uvicorn, 1 process, SQLite; {args.clients} clients x {args.requests} requests "
          "per phase, loopback")
    print(f"{'endpoint':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s vs /health':>18}")
    for name, (rps, latencies) in results.items():
        print(f"{name:<18}{rps:>9,.0f}{percentile(latencies, 50):>9.1f}"
              f"{percentile(latencies, 99):>9.1f}{rps / health_rps:>18.2f}")


if __name__ == "__main__":
    main()
