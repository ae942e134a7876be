"""kill -9 an API worker of ``outcomes serve --workers 2`` during 1,000 concurrent writes: every
write a client got a 2xx for is stored exactly once, and repeating any write with its
``assessment_id`` answers with the first result (issue 10, "Faults")."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fault_harness import Lab, Load, acknowledged_are_stored_once, client, open_episodes
from postgres import PostgresLedger

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
EPISODES, PER_EPISODE = 50, 20  # 1,000 writes
KILL_AFTER = 300  # acknowledged writes before the kill


def test_every_acknowledged_write_is_stored_once_when_a_worker_is_killed(
        lab: Lab, postgres_ledger: PostgresLedger) -> None:
    store = postgres_ledger.environ()
    service = lab.service(store, workers=2, OUTCOMES_PROJECTIONS="runners")
    episodes = open_episodes(service.url, EPISODES)
    load = Load(service.url, episodes, threads=25, limit=PER_EPISODE).start()
    deadline = time.monotonic() + 120
    while len(load.acked) < KILL_AFTER:
        assert time.monotonic() < deadline, f"only {len(load.acked)} writes acknowledged"
        time.sleep(0.01)
    victim = service.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    load.join()

    assert service.process is not None and service.process.alive()
    assert victim not in service.process.children()  # it was killed (uvicorn may replace it)
    assert len(load.acked) == EPISODES * PER_EPISODE  # every write got its 2xx in the end
    assert 500 not in load.statuses()
    # Writes in flight on the killed worker get no answer (ReadError, RemoteProtocolError) and
    # are tried again; none may be when every kept-alive connection was on the other worker.
    print(f"worker killed: {dict(load.statuses())} ({len(load.attempts)} attempts)")
    stored = acknowledged_are_stored_once(load, store)
    assert sum(stored.values()) == EPISODES * PER_EPISODE
    keys = list(load.acked)
    with ThreadPoolExecutor(max_workers=8) as pool:  # the retries, 8 at a time
        list(pool.map(lambda part: _retry_each(service.url, load, part), [keys[i::8]
                                                                         for i in range(8)]))
    assert sum(acknowledged_are_stored_once(load, store).values()) == EPISODES * PER_EPISODE


def _retry_each(url: str, load: Load, keys: list[tuple[str, str]]) -> None:
    """Send each write of ``keys`` again: 200, replayed, and the first result."""
    with client(url) as http:
        for key in keys:
            first = load.acked[key]
            retry = http.post(f"/episodes/{key[0]}/assessments", json=load.bodies[key])
            assert retry.status_code == 200, retry.text
            assert retry.json()["replayed"] is True
            # The first result: the assessment and the stage decisions it caused. ``version``
            # and ``stage`` are the episode's now (the ETag a next write's If-Match needs; later
            # writes of the load moved them on), ``position`` the store's last, ``replayed`` true.
            now = ("replayed", "position", "version", "stage")
            same = {k: v for k, v in retry.json().items() if k not in now}
            assert same == {k: v for k, v in first.items() if k not in now}
            assert retry.json()["version"] >= first["version"]
