"""``outcomes serve --workers 2`` (issue 10): two worker processes on one socket, each logging
``listening``; writes answer their position, and a read sending it as ``X-Min-Position`` is never
stale, whichever worker answers (issue 10 measured 12-14 stale of 288 without). On SQLite the
workers catch their read models up themselves; on PostgreSQL ``outcomes projections run`` does
(the workers never catch up there, ADR 0019), started beside them as ``make run-postgres`` does.

Multi-process: real ``outcomes serve`` processes on a loopback port (marker ``server_process``).
A worker killed during 1,000 writes is tests/faults/test_api_worker_killed.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import Served, serving, write_then_read

pytestmark = pytest.mark.server_process
ROOT = Path(__file__).parents[2]


@pytest.fixture
def served(store: str, tmp_path: Path) -> Iterator[Served]:
    """Two workers on the test's store; on PostgreSQL with one ``outcomes projections run``
    (every read model) beside them, stopped after the test."""
    runners = []
    if store == "postgres":
        runners.append(subprocess.Popen([sys.executable, "-m", "cli", "projections", "run"],
                                        cwd=ROOT, env=dict(os.environ),
                                        stderr=subprocess.DEVNULL))
    try:
        with serving(tmp_path) as server:
            yield server
    finally:
        for runner in runners:
            runner.terminate()
            assert runner.wait(timeout=30) == 0  # SIGTERM: a clean exit


def test_two_workers_serve_and_a_read_at_the_written_position_is_never_stale(
        served: Served) -> None:
    pids = {r.get("pid") for r in served.log if r["event"] == "listening"}
    assert sum(r["event"] == "listening" for r in served.log) == 2
    assert len(pids) == 1 or len(pids) == 2  # each worker logs once (pid where the log has it)
    results: list[str] = []
    threads = [threading.Thread(target=write_then_read, args=(served, 72, results))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 288
    assert [r for r in results if r != "fresh"] == []
    started = [r for r in served.log if r["event"] == "started"]
    assert len(started) == 2  # two worker processes built their services
    assert [r for r in served.log if r["event"] == "unparsed"] == []  # no interleaved lines


def test_sigterm_stops_the_workers_cleanly(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0


def test_two_workers_and_the_runners_hold_few_database_connections(
        served: Served, store: str) -> None:
    """Issue 10's trial: ~20 connections per idle worker and ~15 per runner exhausted the
    server's default max_connections (100) under `make run-postgres`; each store now keeps one
    connection per process (more only under load)."""
    if store != "postgres":
        pytest.skip("database connections are PostgreSQL's")
    import psycopg

    env = os.environ
    time.sleep(3)  # the runners' subscriptions and the workers' probes are up
    with psycopg.connect(host=env["OUTCOMES_POSTGRES_HOST"], port=env["OUTCOMES_POSTGRES_PORT"],
                         user=env["OUTCOMES_POSTGRES_USER"],
                         dbname=env["OUTCOMES_POSTGRES_DBNAME"]) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()
        by_name = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1").fetchall()
    print(f"connections: {count} (2 workers, 5 runners in one process): {by_name}")
    assert count <= 60  # measured 46 here (was ~115 for the same deployment before)
