"""Real ``outcomes serve --workers N`` processes for the multi-process tests (marker
``server_process``): start one on a free loopback port, call it on new connections (the kernel
hands each to either worker), write then read at the written position."""

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]


@dataclass
class Served:
    """A running server: its process, port, a clinician token of clinic c1, its log records."""

    process: subprocess.Popen[str]
    port: int
    token: str
    log: list[dict[str, object]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(folder: Path, env: dict[str, str] | None = None, workers: int = 2) -> Iterator[Served]:
    """``outcomes serve --workers <workers>`` on a store in ``folder`` (plus ``env``), until
    every worker logs ``listening``; SIGTERM at the end. Its stderr is drained to the end (the
    workers would block on a full pipe) into ``Served.log``."""
    port = free_port()
    env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(folder / "outcomes.sqlite"),
           "OUTCOMES_PORT": str(port), "OUTCOMES_LOG_FORMAT": "json", "OUTCOMES_RATE_LIMIT": "off",
           **(env or {})}
    token = subprocess.run([sys.executable, "-m", "cli", "dev-token", "--sub", "dr-1", "--role",
                            "clinician", "--clinic", "c1"], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--workers", str(workers)],
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
    while sum(r["event"] == "listening" for r in log) < workers and time.monotonic() < deadline:
        assert process.poll() is None, "serve ended before listening"
        time.sleep(0.1)
    try:
        yield Served(process, port, token, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def call(served: Served, method: str, path: str, body: object = None,
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


def write_then_read(served: Served, count: int, results: list[str]) -> None:
    """``count`` times: open an episode, read it at the written position; appends "fresh" or
    "stale <status>" to ``results``."""
    for i in range(count):
        status, headers, opened = call(served, "POST", "/episodes",
                                        {"patient_ref": f"p-{i}", "clinic_id": "c1"})
        assert status == 201 and isinstance(opened, dict)
        read_status, _, summary = call(served, "GET", f"/episodes/{opened['episode_id']}",
                                        headers={"X-Min-Position": headers["x-ledger-position"]})
        fresh = (read_status == 200 and isinstance(summary, dict)
                 and summary["version"] == opened["version"])
        results.append("fresh" if fresh else f"stale {read_status}")


