"""Concurrent writers to one episode through one app: no lost event; If-Match losers get 409.

On a SQLite file store: its write lock and busy timeout between threads are part of what is tested.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest

THREADS = 8
PER_THREAD = 5
pytestmark = pytest.mark.file_store


def _run_together(work: Any, count: int) -> list[Any]:
    """Run ``work(n)`` for n in range(count), one thread each, released at the same moment."""
    barrier = threading.Barrier(count)

    def start(n: int) -> Any:
        barrier.wait()
        return work(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def test_eight_threads_recording_on_one_episode_lose_nothing(api, client):
    episode_id = api.open()
    first_day = date(2026, 1, 1)

    def record(thread: int) -> list[tuple[int, str]]:
        results = []
        for k in range(PER_THREAD):
            n = thread * PER_THREAD + k
            response = client.post(f"/episodes/{episode_id}/assessments", json={
                "assessment_id": f"t{thread}-{k}", "instrument": "PHQ-9",
                "administered_on": (first_day + timedelta(days=n)).isoformat(),
                "total": 20 - n % 15})
            results.append((response.status_code, response.json().get("assessment_id")))
        return results

    results = [r for batch in _run_together(record, THREADS) for r in batch]

    expected_ids = {f"t{t}-{k}" for t in range(THREADS) for k in range(PER_THREAD)}
    assert [status for status, _ in results] == [201] * THREADS * PER_THREAD
    assert {aid for _, aid in results} == expected_ids
    summary = api.get(f"/episodes/{episode_id}")
    assert summary["counts"]["assessments"] == THREADS * PER_THREAD
    trail = api.get(f"/episodes/{episode_id}/audit", limit=500)["items"]
    recorded = [e["data"]["assessment_id"] for e in trail if e["type"] == "AssessmentRecorded"]
    assert sorted(recorded) == sorted(expected_ids)
    assert [e["version"] for e in trail] == list(range(1, summary["version"] + 1))


def test_concurrent_writers_with_the_same_if_match_one_wins_the_rest_get_409(api, client):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18)
    etag = client.get(f"/episodes/{episode_id}").headers["ETag"]
    before = api.position()

    def record(thread: int) -> int:
        response = client.post(f"/episodes/{episode_id}/assessments", headers={"If-Match": etag},
                               json={"instrument": "PHQ-9", "total": 12,
                                     "administered_on": f"2026-02-{thread + 1:02d}"})
        if response.status_code == 409:
            assert response.json()["type"] == "/problems/version-conflict"
        return response.status_code

    statuses = _run_together(record, THREADS)

    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    assert api.get(f"/episodes/{episode_id}")["counts"]["assessments"] == 2
    assert api.position() == before + 1  # the winner's assessment; 12 after 18 is no stage event


def test_stale_if_match_is_refused_and_changes_nothing(api, client):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", 18)
    stale = '"1"'
    before = api.position()

    response = client.post(f"/episodes/{episode_id}/assessments", headers={"If-Match": stale},
                           json={"instrument": "PHQ-9", "administered_on": "2026-01-26",
                                 "total": 8})

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.position() == before
    assert api.get(f"/episodes/{episode_id}")["version"] == 2
