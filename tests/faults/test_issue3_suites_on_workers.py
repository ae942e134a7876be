"""The service's end-to-end suites (issue 3's kind) on the scaled-out shape of issue 10: a
PostgreSQL ledger, ``outcomes serve --workers 2`` and one ``outcomes projections run NAME``
process per read model. Every request goes on a new connection (either worker may answer), and
every read sends ``X-Min-Position`` with the last position this client wrote (read-your-writes
across processes, ADR 0019).

- every public criteria vector end to end (GET /stages, or the course outcome at POST /close);
- 8 concurrent writers to one episode lose nothing, and with one shared If-Match one wins;
- ``outcomes projections rebuild all`` while the runners run gives the same answers as the
  read models built incrementally.

A real server runs on today's clock, so the vectors' dates (2025-12 to 2027-02) are moved four
years back: no 29 February lies in either range, so every day count and calendar month between
two dates is the same, and the expectations' dates move with them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from criteria_vectors import ORDER, VECTORS
from fault_harness import READ_MODELS, ROOT, Lab, Service, service_environ
from local_issuer import bearer

pytestmark = pytest.mark.faults

COURSE_OUTCOME_SETS = ("nhs-talking-therapies-2024", "cms159")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def shifted(value: Any) -> Any:
    """``value`` with every ISO date (also a datetime's date part) four years earlier."""
    if isinstance(value, str) and ISO_DATE.match(value):
        day = date.fromisoformat(value[:10])
        return day.replace(year=day.year - 4).isoformat() + value[10:]
    if isinstance(value, list):
        return [shifted(v) for v in value]
    if isinstance(value, dict):
        return {k: shifted(v) for k, v in value.items()}
    return value


class Client:
    """HTTP on a new connection per request, reads at this client's last written position."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers=bearer(), timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0))
        self.position = 0

    def write(self, method: str, path: str, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> httpx.Response:
        response = self.http.request(method, path, json=body, headers=headers)
        if response.status_code < 300:
            position = int(response.headers["X-Ledger-Position"])
            assert response.json()["position"] == position
            self.position = max(self.position, position)
        return response

    def read(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params,
                                 headers={"X-Min-Position": str(self.position)})
        assert response.status_code == 200, response.text
        return response.json()

    def open(self, patient_ref: str, criteria: str | None = None) -> str:
        body = {"patient_ref": patient_ref, "clinic_id": "vectors", "opened_on": "2021-12-01",
                **({"criteria": criteria} if criteria else {})}
        response = self.write("POST", "/episodes", body)
        assert response.status_code == 201, response.text
        episode_id: str = response.json()["episode_id"]
        return episode_id

    def record(self, episode_id: str, vector: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        for row in shifted(rows):
            body = {"instrument": row.get("instrument", vector.get("instrument", "PHQ-9")),
                    "administered_on": row["date"]}
            for field in ("total", "items"):
                if row.get(field) is not None:
                    body[field] = row[field]
            response = self.write("POST", f"/episodes/{episode_id}/assessments", body)
            assert response.status_code == 201, response.text


def _cases(kind: str) -> list[Any]:
    return [pytest.param(vector, key, expected, id=f"{vector['id']}-{key}")
            for vector in VECTORS for key, expected in vector["expected"].items()
            if (kind == "outcome") == (key.split("|")[0] in COURSE_OUTCOME_SETS)]


def _shape(event: dict[str, Any], with_onset: bool) -> tuple[Any, ...]:
    return (event["type"], event["date"], event.get("degree"),
            *((event.get("onset"),) if with_onset else ()))


def assert_events(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    """Type, date and degree of every event (onset where the expectation gives one), in the
    specification's order on one date."""
    rank = {t: i for i, t in enumerate(ORDER)}

    def canon(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(events, key=lambda e: (e["date"], rank.get(e["type"], 99),
                                             e.get("degree") or ""))
    want, got = canon(shifted(expected)), canon(actual)
    onsets = ["onset" in e for e in want] + [False] * len(got)
    assert [_shape(a, onsets[i]) for i, a in enumerate(got)] == [
        _shape(e, onsets[i]) for i, e in enumerate(want)]


@pytest.fixture(scope="module")
def scaled_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Service]]:
    """A ledger on a cluster of its own, one runner per read model, two API workers."""
    lab = Lab(tmp_path_factory.mktemp("scaled-out"))
    try:
        store = lab.ledger(lab.cluster()).environ()
        for name in (*READ_MODELS, "access-log"):
            lab.runner(store, name)
        yield lab, lab.service(store, workers=2)
    finally:
        lab.close()


@pytest.fixture
def api(scaled_out: tuple[Lab, Service]) -> Iterator[Client]:
    client = Client(scaled_out[1].url)
    yield client
    client.http.close()


@pytest.mark.parametrize(("vector", "key", "expected"), _cases("stages"))
def test_stage_history_matches_the_vector(api: Client, vector: dict[str, Any], key: str,
                                          expected: list[dict[str, Any]]) -> None:
    episode_id = api.open(f"vec-{vector['id']}", key)
    api.record(episode_id, vector, vector["assessments"] + vector.get("backdated_insert", []))

    history = api.read(f"/episodes/{episode_id}/stages")

    assert history["criteria"]["id"] == key
    assert_events(expected, history["events"])


@pytest.mark.parametrize(("vector", "key", "expected"), _cases("outcome"))
def test_course_outcome_at_discharge_matches_the_vector(api: Client, vector: dict[str, Any],
                                                        key: str, expected: dict[str, Any]) -> None:
    episode_id = api.open(f"vec-{vector['id']}", key)
    rows = vector["assessments"] + vector.get("backdated_insert", [])
    api.record(episode_id, vector, rows)
    discharged_on = shifted(vector.get("discharge") or max(row["date"] for row in rows))

    response = api.write("POST", f"/episodes/{episode_id}/close",
                         {"discharged_on": discharged_on})

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert {k: outcome.get(k) for k in expected} == shifted(expected)
    assert api.read(f"/episodes/{episode_id}")["closed_on"] == discharged_on


def eight_writers(api: Client, episode_id: str, month: int,
                  headers: dict[str, str] | None = None) -> list[int]:
    """Eight clients posting one PHQ-9 each to ``episode_id`` at once; their statuses, sorted
    (``api`` then reads at the highest position any of them wrote)."""
    answers: list[int] = []

    def write(index: int) -> None:
        writer = Client(str(api.http.base_url))
        response = writer.write("POST", f"/episodes/{episode_id}/assessments", {
            "instrument": "PHQ-9", "administered_on": f"2022-{month:02d}-{10 + index:02d}",
            "total": 10 + index}, headers=headers)
        answers.append(response.status_code)
        api.position = max(api.position, writer.position)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(answers)


def test_eight_concurrent_writers_to_one_episode_lose_nothing(api: Client) -> None:
    episode_id = api.open("concurrent-8")

    assert eight_writers(api, episode_id, 1) == [201] * 8
    summary = api.read(f"/episodes/{episode_id}")
    assert summary["counts"]["assessments"] == 8
    assert summary["version"] == 9


def test_eight_writers_with_one_if_match_one_wins_seven_conflict(api: Client) -> None:
    episode_id = api.open("concurrent-if-match")
    version = api.read(f"/episodes/{episode_id}")["version"]

    assert eight_writers(api, episode_id, 2, {"If-Match": f'"{version}"'}) == [201] + [409] * 7
    assert api.read(f"/episodes/{episode_id}")["counts"]["assessments"] == 1


def _everything(api: Client) -> dict[str, Any]:
    """What the read models answer about every episode of clinic ``vectors``."""
    episodes: list[dict[str, Any]] = []
    page = api.read("/episodes", clinic_id="vectors", limit="500")
    while True:
        episodes.extend(page["items"])
        if not page["next"]:
            break
        page = api.read(page["next"])  # the next page's URL (keyset cursor)
    answers: dict[str, Any] = {"episodes": episodes,
                               "outcomes": api.read("/clinics/vectors/outcomes")}
    for summary in episodes:
        episode_id = summary["episode_id"]
        answers[episode_id] = (api.read(f"/episodes/{episode_id}/stages",
                                        include_retracted="true"),
                               api.read(f"/episodes/{episode_id}/audit", limit="500"))
    return answers


def test_a_rebuild_while_the_runners_run_equals_the_incremental_read_models(
        api: Client, scaled_out: tuple[Lab, Service]) -> None:
    lab, service = scaled_out
    episode_id = api.open("rebuild-check")
    api.record(episode_id, {"instrument": "PHQ-9"},
               [{"date": f"2026-0{m}-01", "total": t} for m, t in ((1, 20), (2, 12), (3, 6))])
    before = _everything(api)
    assert len(before["episodes"]) >= 20  # the vectors' episodes and this one

    rebuilt = subprocess.run([sys.executable, "-m", "cli", "projections", "rebuild", "all"],
                             cwd=ROOT, env=service_environ(lab_store(service), lab.folder),
                             capture_output=True, text=True, timeout=300)

    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert _everything(api) == before


def lab_store(service: Service) -> dict[str, str]:
    """The ledger's ``OUTCOMES_*`` settings the service runs with."""
    return {k: v for k, v in service.env.items() if k.startswith("OUTCOMES_")}
