"""``outcomes serve --workers 2`` on SQLite (issue 10): two worker processes on one socket, each
logging ``listening``; writes answer their position, and a read sending it as ``X-Min-Position``
is never stale, whichever worker answers (issue 10 measured 12-14 stale of 288 without).

Multi-process: real ``outcomes serve`` processes on a loopback port (marker ``server_process``).
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from served import Served, call, serving, write_then_read

pytestmark = pytest.mark.server_process


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as server:
        yield server


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
            status, _, result = call(served, "POST", f"/episodes/{episode}/assessments", body)
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
        status, _, opened = call(served, "POST", "/episodes",
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
        status, _, listed = call(served, "GET", f"/episodes/{episode}/assessments")
        assert status == 200 and isinstance(listed, dict)
        ids = [a["assessment_id"] for a in listed["items"]]
        assert sorted(ids) == sorted(f"e{n}-d{day}" for day in range(125))  # each exactly once
    assert victim not in _workers(served)
    assert len(_workers(served)) == 2  # uvicorn replaced the killed worker
