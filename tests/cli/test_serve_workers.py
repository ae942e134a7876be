"""``outcomes serve --workers 2`` on SQLite (issue 10): two worker processes on one socket, each
logging ``listening``; writes answer their position, and a read sending it as ``X-Min-Position``
is never stale, whichever worker answers (issue 10 measured 12-14 stale of 288 without).

Multi-process: real ``outcomes serve`` processes on a loopback port (marker ``server_process``).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.server_process
ROOT = Path(__file__).parents[2]


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    token: str
    log: list[dict[str, object]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(tmp_path / "outcomes.sqlite"),
           "OUTCOMES_PORT": str(port), "OUTCOMES_LOG_FORMAT": "json", "OUTCOMES_RATE_LIMIT": "off"}
    token = subprocess.run([sys.executable, "-m", "cli", "dev-token", "--sub", "dr-1", "--role",
                            "clinician", "--clinic", "c1"], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--workers", "2"],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    log: list[dict[str, object]] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:  # drained to the end, or the workers would block
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"event": "unparsed", "line": line}
            log.append(record)
    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while sum(r["event"] == "listening" for r in log) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "serve ended before listening"
        time.sleep(0.1)
    try:
        yield Served(process, port, token, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _call(served: Served, method: str, path: str, body: object = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], object]:
    """One request on a new connection (the kernel hands it to either worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": f"Bearer {served.token}",
                              "Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, (
            json.loads(data) if data else None)
    finally:
        conn.close()


def _write_then_read(served: Served, count: int, results: list[str]) -> None:
    for i in range(count):
        status, headers, opened = _call(served, "POST", "/episodes",
                                        {"patient_ref": f"p-{i}", "clinic_id": "c1"})
        assert status == 201 and isinstance(opened, dict)
        read_status, _, summary = _call(served, "GET", f"/episodes/{opened['episode_id']}",
                                        headers={"X-Min-Position": headers["x-ledger-position"]})
        fresh = (read_status == 200 and isinstance(summary, dict)
                 and summary["version"] == opened["version"])
        results.append("fresh" if fresh else f"stale {read_status}")


def test_two_workers_serve_and_a_read_at_the_written_position_is_never_stale(
        served: Served) -> None:
    pids = {r.get("pid") for r in served.log if r["event"] == "listening"}
    assert sum(r["event"] == "listening" for r in served.log) == 2
    assert len(pids) == 1 or len(pids) == 2  # each worker logs once (pid where the log has it)
    results: list[str] = []
    threads = [threading.Thread(target=_write_then_read, args=(served, 72, results))
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


def _workers(served: Served) -> list[int]:
    """The pids of the worker processes (uvicorn spawns them: ``multiprocessing.spawn``)."""
    pid = served.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children
            if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def _record_until_answered(served: Served, episode: str, body: dict[str, object],
                           answers: list[tuple[str, int, bool]], failures: list[str]) -> None:
    """POST one assessment, retried with the same body (same assessment_id) until a 2xx or a
    4xx: a worker killed mid-request answers nothing, another one answers the retry."""
    for _ in range(50):
        try:
            status, _, result = _call(served, "POST", f"/episodes/{episode}/assessments", body)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
            time.sleep(0.1)
            continue
        if status >= 500:
            failures.append(str(status))
            time.sleep(0.1)
            continue
        assert isinstance(result, dict)
        answers.append((str(body["assessment_id"]), status, bool(result.get("replayed"))))
        return
    raise AssertionError(f"no answer for {body['assessment_id']}")


def test_a_worker_killed_during_1000_writes_loses_none_and_stores_none_twice(
        served: Served) -> None:
    episodes = []
    for i in range(8):
        status, _, opened = _call(served, "POST", "/episodes",
                                  {"patient_ref": f"k-{i}", "clinic_id": "c1",
                                   "opened_on": "2025-01-01"})
        assert status == 201 and isinstance(opened, dict)
        episodes.append(opened["episode_id"])
    answers: list[tuple[str, int, bool]] = []
    failures: list[str] = []

    def write(episode: str, n: int) -> None:
        for day in range(125):
            body = {"instrument": "PHQ-9", "total": 5 + (day * 7) % 20,
                    "administered_on": (date(2025, 1, 2) + timedelta(days=day)).isoformat(),
                    "assessment_id": f"e{n}-d{day}"}
            _record_until_answered(served, episode, body, answers, failures)
    threads = [threading.Thread(target=write, args=(e, n)) for n, e in enumerate(episodes)]
    for thread in threads:
        thread.start()
    while len(answers) < 200:
        time.sleep(0.05)
    victim = _workers(served)[0]
    os.kill(victim, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=600)

    assert len(answers) == 1000
    assert failures  # requests in flight on the killed worker got no answer, and were retried
    print(f"killed worker: {len(failures)} failed attempts retried "
          f"({sorted(set(failures))}), {sum(s == 200 for _, s, _ in answers)} replayed")
    assert {status for _, status, _ in answers} <= {200, 201}
    assert all(replayed for _, status, replayed in answers if status == 200)
    for n, episode in enumerate(episodes):
        status, _, listed = _call(served, "GET", f"/episodes/{episode}/assessments")
        assert status == 200 and isinstance(listed, dict)
        ids = [a["assessment_id"] for a in listed["items"]]
        assert sorted(ids) == sorted(f"e{n}-d{day}" for day in range(125))  # each exactly once
    assert victim not in _workers(served)
    assert len(_workers(served)) == 2  # uvicorn replaced the killed worker
