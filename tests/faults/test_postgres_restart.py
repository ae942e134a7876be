"""PostgreSQL restarted under load: while it is down every write is answered 503 with a
``Retry-After`` (never a 500, the server stays up), no acknowledged write is lost, and writes
succeed again once it is back without restarting the service (issue 10, "Faults")."""

from __future__ import annotations

import time

import pytest
from fault_harness import (
    Lab,
    Load,
    acknowledged_are_stored_once,
    assessment,
    client,
    open_episodes,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
# A write in flight when PostgreSQL goes waits for a connection (OUTCOMES_POSTGRES_CONNECT_TIMEOUT,
# 1 s here) on each of the library's 10 attempts (0.2 s apart), twice (the episode's events, then
# the access-log record): its 503 comes after ~24 s (measured 23.7 s before the breaker), so the
# clients wait that long (ANSWER_S), and the load's threads are all waiting so for most of the
# outage. Within about a second the breaker (api.availability: two failed probes, 0.5 s apart)
# opens: every write a fresh client tries after that is a 503 at once (FAST_S).
CONNECT_TIMEOUT_S, ANSWER_S, DOWN_S, OPEN_S, FAST_S = 1, 60.0, 10.0, 3.0, 1.0


def test_a_restart_under_load_is_503_with_retry_after_and_loses_nothing(lab: Lab) -> None:
    cluster = lab.cluster()
    store = lab.ledger(cluster).environ()
    service = lab.service(store, workers=2, OUTCOMES_PROJECTIONS="runners",
                          OUTCOMES_POSTGRES_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT_S))
    assert service.process is not None
    server_pid = service.process.pid
    episodes = open_episodes(service.url, 8)
    load = Load(service.url, episodes, threads=4, timeout=ANSWER_S).start()
    wait_until(lambda: len(load.acked) >= 50, 60, "no load before the restart")

    cluster.stop("fast")
    down_at = time.monotonic()
    time.sleep(OPEN_S)
    fresh = []  # (status, Retry-After, seconds) of writes tried with the breaker open
    with client(service.url, timeout=ANSWER_S) as http:
        for index in range(5):
            started = time.monotonic()
            answer = http.post(f"/episodes/{episodes[0]}/assessments",
                               json=assessment(episodes[0], 10_000 + index))
            fresh.append((answer.status_code, answer.headers.get("Retry-After"),
                          time.monotonic() - started))
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
    during = [a for a in load.attempts if a.at >= down_at + 1.0]  # 1 s for in-flight requests
    cluster.start()
    up_at = time.monotonic()
    wait_until(lambda: load.acked_since(up_at) >= 50, 60,
               f"no recovery after the restart: {load.statuses()}")
    load.stop()

    waits = sorted(round(a.took, 1) for a in during)
    print(f"restart under load: {len(during)} writes answered while down, in {waits} s "
          f"({dict(load.statuses())} in all); with the breaker open: "
          f"{[(st, round(took, 3)) for st, _, took in fresh]}")
    assert service.process.alive() and service.process.pid == server_pid
    assert all(a.status == 503 for a in during), waits  # any the load could still start
    assert [(status, retry) for status, retry, _ in fresh] == [(503, "1")] * 5, fresh
    assert max(took for _, _, took in fresh) < FAST_S, fresh
    assert all(a.retry_after is not None and int(a.retry_after) > 0 for a in during)
    statuses = load.statuses()
    assert not [s for s in statuses if not isinstance(s, int) or (s >= 500 and s != 503)], statuses
    assert all(s < 300 or s == 503 for s in statuses if isinstance(s, int)), statuses
    acknowledged_are_stored_once(load, store)
