"""The API reproduces the public criteria vectors end to end: one episode per vector and criteria
key, every row posted as an assessment, then GET /stages (longitudinal sets) or POST /close (the
course outcome of NHS Talking Therapies and CMS159) compared with the expectation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from api_helpers import Api, memory_settings, running
from criteria_vectors import ORDER, VECTORS

COURSE_OUTCOME_SETS = ("nhs-talking-therapies-2024", "cms159")


def _cases(kind: str) -> list[Any]:
    cases = []
    for vector in VECTORS:
        for key, expected in vector["expected"].items():
            course = key.split("|")[0] in COURSE_OUTCOME_SETS
            if (kind == "outcome") == course:
                cases.append(pytest.param(vector, key, expected, id=f"{vector['id']}-{key}"))
    return cases


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with running(memory_settings()) as client:
        yield Api(client)


def _post_rows(api: Api, episode_id: str, vector: dict[str, Any],
               rows: list[dict[str, Any]]) -> None:
    for row in rows:
        api.record(episode_id, row["date"], row.get("total"), items=row.get("items"),
                   instrument=row.get("instrument", vector.get("instrument", "PHQ-9")))


def _canon(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(events, key=lambda e: (e["date"], rank.get(e["type"], 99), e.get("degree") or ""))


def _shape(event: dict[str, Any], with_onset: bool) -> tuple[Any, ...]:
    onset = (event.get("onset"),) if with_onset else ()
    return (event["type"], event["date"], event.get("degree"), *onset)


def _assert_events(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    """Type, date and degree of every event; onset where the expectation gives one."""
    want, got = _canon(expected), _canon(actual)
    onsets = ["onset" in e for e in want] + [False] * len(got)
    assert [_shape(a, onsets[i]) for i, a in enumerate(got)] == [
        _shape(e, onsets[i]) for i, e in enumerate(want)]


@pytest.mark.parametrize(("vector", "key", "expected"), _cases("stages"))
def test_stage_history_matches_the_vector(api, vector, key, expected):
    episode_id = api.open(patient_ref=f"vec-{vector['id']}", clinic_id="vectors", criteria=key)
    _post_rows(api, episode_id, vector, vector["assessments"])
    before_insert = None
    if vector.get("backdated_insert"):
        time.sleep(0.01)
        before_insert = datetime.now(UTC)
        time.sleep(0.01)
        _post_rows(api, episode_id, vector, vector["backdated_insert"])
    url = f"/episodes/{episode_id}/stages"

    history = api.get(url)

    assert history["criteria"]["id"] == key
    _assert_events(expected, history["events"])
    if before_insert is not None and key in vector.get("expected_before", {}):
        then = api.get(url, as_of=before_insert.isoformat())["events"]
        _assert_events(vector["expected_before"][key], then)
    if key in vector.get("expected_diff", {}):
        everything = api.get(url, include_retracted="true")["events"]
        _assert_events(vector["expected_diff"][key]["retracted"],
                       [e for e in everything if e["retracted"]])


@pytest.mark.parametrize(("vector", "key", "expected"), _cases("outcome"))
def test_course_outcome_at_discharge_matches_the_vector(api, vector, key, expected):
    episode_id = api.open(patient_ref=f"vec-{vector['id']}", clinic_id="vectors", criteria=key)
    rows = vector["assessments"] + vector.get("backdated_insert", [])
    _post_rows(api, episode_id, vector, rows)
    discharged_on = vector.get("discharge") or max(row["date"] for row in rows)

    response = api.client.post(f"/episodes/{episode_id}/close",
                               json={"discharged_on": discharged_on})

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome is not None
    assert {k: outcome.get(k) for k in expected} == expected
