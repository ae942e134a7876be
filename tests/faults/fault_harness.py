"""Processes the fault tests start, kill and restart: ``outcomes serve --workers N`` and
``outcomes projections run NAME`` against a ledger, an HTTP client that retries the way the
API's clients do, and a reader of what the event store really holds.

The PostgreSQL side (a cluster to stop and restart, a streaming standby to promote) is
``pg_cluster.Cluster``. Every process here runs in a session of its own, so a kill reaches
it and its children only; each is stopped (SIGTERM, then SIGKILL) when its test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from local_issuer import auth_settings, bearer
from pg_cluster import Cluster, free_port
from postgres import PostgresLedger, PostgresServer, init_ledger

ROOT = Path(__file__).parents[2]
RECORDED = "outcome-ledger:Episode.AssessmentRecorded"
# the write model's read models
READ_MODELS = ("episodes", "stages", "audit", "cohort", "fold-inputs", "caseload")


def service_environ(store: Mapping[str, str], folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a server or runner on ``store`` (``OUTCOMES_*`` of the ledger, e.g.
    ``PostgresLedger.environ()``): JSON logs, production auth against the tests' local issuer,
    no rate limit, key files in ``folder``."""
    auth = {f"OUTCOMES_{k.upper()}": str(v) for k, v in auth_settings().items()}
    return {**os.environ, **store, **auth, "OUTCOMES_SQLITE_PATH": str(folder / "outcomes.sqlite"),
            "OUTCOMES_LOG_FORMAT": "json", "OUTCOMES_RATE_LIMIT": "off", **extra}


@dataclass
class Process:
    """One ``outcomes`` command in a session of its own, stderr to ``log``."""

    args: Sequence[str]
    env: Mapping[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as err:
            self.popen = subprocess.Popen([sys.executable, "-m", "cli", *self.args], cwd=ROOT,
                                          env=dict(self.env), stdout=subprocess.DEVNULL,
                                          stderr=err, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def children(self) -> list[int]:
        """Pids of the process's live direct children but multiprocessing's resource tracker
        (the API workers of ``serve --workers``)."""
        found = []
        for status in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = status.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) != self.pid or fields[0] == "Z":
                continue
            try:
                command = (status.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in command:  # multiprocessing's helper is no worker
                found.append(int(status.parent.name))
        return sorted(found)

    def kill9(self) -> None:
        """SIGKILL the whole process group (the command and its children), then reap it."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.popen is not None
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; the exit status (None if never started)."""
        if self.popen is None:
            return None
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=30)
        return self.popen.returncode

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def wait_for_log(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The first JSON log record whose ``event`` is ``event``; AssertionError when the
        process ends or ``timeout`` s pass first (the message carries the log's end)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_records():
                if record.get("event") == event:
                    return record
            assert self.alive(), f"{self.args} ended: {self.log.read_text()[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"{self.args}: no {event!r} in {timeout} s: "
                             f"{self.log.read_text()[-3000:]}")


@dataclass
class Service:
    """``outcomes serve --workers N`` on a free loopback port."""

    env: Mapping[str, str]
    folder: Path
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: Process | None = None

    def start(self) -> Service:
        env = {**self.env, "OUTCOMES_PORT": str(self.port)}
        self.process = Process(["serve", "--workers", str(self.workers)], env,
                               self.folder / f"serve-{self.port}.log").start()
        self.process.wait_for_log("listening")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self, timeout: float = 30) -> list[int]:
        """The API workers' pids once all ``workers`` are up (AssertionError otherwise)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.process.children()
            if len(pids) >= self.workers:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"{self.workers} workers not up: {self.process.children()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def runner_process(env: Mapping[str, str], folder: Path, *names: str) -> Process:
    """``outcomes projections run NAME...`` (not started)."""
    label = "-".join(names) or "all"
    return Process(["projections", "run", *names], env, folder / f"runner-{label}.log")


def client(url: str, timeout: float = 10) -> httpx.Client:
    """An HTTP client with the local issuer's default token (every role, every test clinic)."""
    return httpx.Client(base_url=url, headers=bearer(), timeout=timeout)


@dataclass
class Outcome:
    """What a client saw for one request it repeated until it got an answer it keeps."""

    status: int | None  # the answer kept (2xx, or the last one), None: never answered
    body: Any = None
    statuses: list[int | str] = field(default_factory=list)  # every try: status or error name
    retry_after: list[str | None] = field(default_factory=list)  # of each 503


def post_until_answered(http: httpx.Client, url: str, body: Mapping[str, Any], *,
                        deadline_s: float = 60, pause_s: float = 0.2) -> Outcome:
    """POST ``body`` until a 2xx or a 4xx answer (the kept answer), retrying the same body
    after a connection error or a 5xx, for at most ``deadline_s`` seconds (what a client that
    sends an ``assessment_id`` may do: a repeat is answered with the first result)."""
    outcome = Outcome(None)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            answer = http.post(url, json=dict(body))
        except httpx.HTTPError as error:
            outcome.statuses.append(type(error).__name__)
            time.sleep(pause_s)
            continue
        outcome.statuses.append(answer.status_code)
        if answer.status_code == 503:
            outcome.retry_after.append(answer.headers.get("Retry-After"))
        if answer.status_code < 500:
            outcome.status, outcome.body = answer.status_code, answer.json()
            return outcome
        outcome.status = answer.status_code
        time.sleep(pause_s)
    return outcome


def recorded_assessments(env: Mapping[str, str]) -> Counter[tuple[str, str]]:
    """How many ``AssessmentRecorded`` events the write model's store holds per
    (episode id, assessment id), read from the event store itself through the library (the
    store ``env``'s ``OUTCOMES_*`` variables name)."""
    from application.outcomes import OutcomesApplication
    from bootstrap import Settings

    settings = Settings(**{k[len("OUTCOMES_"):].lower(): v for k, v in env.items()
                           if k.startswith("OUTCOMES_") and k[len("OUTCOMES_"):].lower()
                           in Settings.model_fields})
    app = OutcomesApplication(settings.eventsourcing_env())
    try:
        counts: Counter[tuple[str, str]] = Counter()
        for notification in _notifications(app):
            if notification.topic == RECORDED:
                event = app.mapper.to_domain_event(notification)
                counts[(str(event.originator_id), str(event.assessment_id))] += 1
        return counts
    finally:
        app.close()


def _notifications(app: Any, page: int = 1000) -> Iterator[Any]:
    start = 1
    while True:
        batch = app.recorder.select_notifications(start=start, limit=page)
        yield from batch
        if len(batch) < page:
            return
        start = batch[-1].id + 1


def wait_until(predicate: Any, timeout: float, message: str, pause: float = 0.2) -> None:
    """Poll ``predicate()`` until true; AssertionError(``message``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(pause)
    raise AssertionError(message)


@dataclass
class Lab:
    """What one fault test starts: clusters, servers, runners (all stopped at its end)."""

    folder: Path
    clusters: list[Cluster] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)

    def cluster(self) -> Cluster:
        """A new throwaway cluster of the test's own (to stop, restart, fail over)."""
        made = Cluster.create()
        self.clusters.append(made)
        return made

    def standby(self, primary: Cluster) -> Cluster:
        made = primary.standby()
        self.clusters.append(made)
        return made

    def ledger(self, cluster: Cluster, dbname: str = "outcomes") -> PostgresLedger:
        """Database ``dbname`` on ``cluster`` with a ledger ``outcomes db init`` made."""
        server = PostgresServer(cluster.host, cluster.port, cluster.user)
        server.create_database(dbname)
        ledger = PostgresLedger(server, dbname)
        init_ledger(ledger)
        return ledger

    def service(self, store: dict[str, str], workers: int = 2, **extra: str) -> Service:
        made = Service(service_environ(store, self.folder, **extra), self.folder, workers)
        self.services.append(made)
        return made.start()

    def runner(self, store: dict[str, str], *names: str, **extra: str) -> Process:
        made = runner_process(service_environ(store, self.folder, **extra), self.folder, *names)
        self.processes.append(made)
        return made.start()

    def close(self) -> None:
        for service in self.services:
            service.stop()
        for process in self.processes:
            process.stop()
        for cluster in reversed(self.clusters):
            cluster.destroy()


FIRST_DAY = "2020-01-06"  # episodes open then; assessment i is administered i days later


def assessment(episode_id: str, index: int) -> dict[str, Any]:
    """The ``index``-th assessment of a load's episode: a PHQ-9 total, one day apart, an
    ``assessment_id`` naming both (so a retry is recognisable)."""
    from datetime import date, timedelta

    day = date.fromisoformat(FIRST_DAY) + timedelta(days=index)
    return {"assessment_id": f"{episode_id}-{index}", "instrument": "PHQ-9",
            "administered_on": day.isoformat(), "total": (7 * index + 20) % 28}


def open_episodes(url: str, count: int, clinic_id: str = "clinic-a") -> list[str]:
    """Open ``count`` episodes (retrying until answered); their ids."""
    ids = []
    with client(url) as http:
        for number in range(count):
            outcome = post_until_answered(http, "/episodes", {
                "patient_ref": f"pseudo-fault-{number}", "clinic_id": clinic_id,
                "opened_on": FIRST_DAY})
            assert outcome.status == 201, outcome
            ids.append(outcome.body["episode_id"])
    return ids


@dataclass
class Attempt:
    """One try of one write: when (monotonic s), which, and what came back."""

    at: float
    key: tuple[str, str]  # (episode id, assessment id)
    status: int | str  # the HTTP status, or the name of the connection error
    retry_after: str | None = None
    took: float = 0.0  # seconds from sending to the answer (or the error)


class Load:
    """Writers recording assessments through the API until stopped: ``threads`` threads, each
    owning some episodes, one write at a time; a write that gets a 5xx or no answer is tried
    again with the same body until it gets a 2xx (or a 4xx, kept as a failure)."""

    def __init__(self, url: str, episodes: Sequence[str], threads: int = 4,
                 limit: int | None = None, timeout: float = 10) -> None:
        import threading

        self.url, self.episodes, self.limit = url, list(episodes), limit
        self.timeout = timeout  # seconds a write waits for its answer
        self.attempts: list[Attempt] = []
        self.acked: dict[tuple[str, str], Any] = {}  # first 2xx body per write
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(self.episodes[i::threads],),
                                          daemon=True) for i in range(threads)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 300) -> None:
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a writer did not finish"

    def acked_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for a in self.attempts if a.at >= moment and isinstance(a.status, int)
                       and 200 <= a.status < 300)

    def statuses(self) -> Counter[int | str]:
        with self._lock:
            return Counter(a.status for a in self.attempts)

    def _write(self, episodes: list[str]) -> None:
        with client(self.url, self.timeout) as http:
            index = 0
            while not self._stop.is_set() and (self.limit is None or index < self.limit):
                for episode_id in episodes:
                    self._write_one(http, episode_id, index)
                index += 1

    def _write_one(self, http: httpx.Client, episode_id: str, index: int) -> None:
        body = assessment(episode_id, index)
        key = (episode_id, body["assessment_id"])
        self.bodies[key] = body
        while True:
            sent = time.monotonic()
            try:
                answer = http.post(f"/episodes/{episode_id}/assessments", json=body)
                status: int | str = answer.status_code
            except httpx.HTTPError as error:
                answer, status = None, type(error).__name__
            with self._lock:
                now = time.monotonic()
                self.attempts.append(Attempt(now, key, status, None if answer is None
                                             else answer.headers.get("Retry-After"), now - sent))
                if answer is not None and answer.status_code < 500:
                    if answer.status_code < 300:
                        self.acked[key] = answer.json()
                    return
            if self._stop.is_set() and self.limit is None:
                return  # stopped mid-outage: this write was never acknowledged
            time.sleep(0.1)


def acknowledged_are_stored_once(load: Load, env: Mapping[str, str]) -> Counter[tuple[str, str]]:
    """Assert every write ``load`` got a 2xx for is stored exactly once; the store's counts."""
    stored = recorded_assessments(env)
    missing = [key for key in load.acked if stored[key] == 0]
    twice = {key: n for key, n in stored.items() if n > 1}
    assert not missing, f"{len(missing)} acknowledged writes are not stored: {missing[:5]}"
    assert not twice, f"stored more than once: {list(twice.items())[:5]}"
    return stored
