"""The write model's projector (``application.outcomes.project_events``) rebuilds exactly what the
library's ``project_aggregate`` rebuilds: the same type, version and every field (``vars``), for a
full replay, at every version and from every intermediate version on. Given the episodes of the
public vectors (stored on a SQLite file and on PostgreSQL, so events come back through the real
transcoder) and hypothesis-generated episodes (open, record and void assessments, close).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from criteria_vectors import VECTORS
from eventsourcing.application import project_aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from application.outcomes import OutcomesApplication, project_events
from domain.criteria.builtin import BUILTIN
from domain.errors import DomainError

CLINICIAN = "clinician-0042"
NOW = datetime(2027, 12, 31, tzinfo=UTC)


def assert_same(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    assert ours.version == theirs.version
    assert vars(ours) == vars(theirs)


def assert_same_replays(app: OutcomesApplication, episode_id: UUID) -> int:
    """Ours equals the library's at every version, through ``get_episode`` (the repository with
    our projector) and directly on the stored events from each version on; returns how many
    events the episode has."""
    def stored() -> list[Any]:  # fresh objects for each replay: nothing shared between them
        return list(app.repository.event_store.get(episode_id))

    count = len(stored())
    assert_same(app.get_episode(episode_id), app.repository.get(episode_id))
    for version in range(1, count + 1):
        assert_same(app.get_episode(episode_id, version),
                    app.repository.get(episode_id, version=version))
        head, tail = stored()[:version], stored()[version:]
        assert_same(project_events(project_aggregate(None, head), tail),
                    project_aggregate(project_aggregate(None, stored()[:version]),
                                      stored()[version:]))
    return count


def open_vector(app: OutcomesApplication, vec: dict[str, Any], rows: list[dict[str, Any]]) -> UUID:
    first = min(date.fromisoformat(r["date"]) for r in rows)
    return app.open_episode(patient_ref=f"pseudo-{vec['id']}", clinic_id="clinic-1",
                            recorded_by=CLINICIAN, criteria=next(iter(vec["expected"])),
                            instrument=vec["instrument"], opened_on=first).episode_id


@pytest.mark.file_store
@pytest.mark.parametrize("vec", VECTORS, ids=[v["id"] for v in VECTORS])
def test_every_vector_episode_replays_the_same_as_with_the_library(
        app: OutcomesApplication, vec: dict[str, Any]) -> None:
    rows = vec["assessments"] + vec.get("backdated_insert", [])
    episode_id = open_vector(app, vec, rows)
    for index, row in enumerate(rows, start=1):
        app.record_assessment(
            episode_id, instrument=row.get("instrument", vec["instrument"]),
            administered=date.fromisoformat(row["date"]), items=row.get("items"),
            total=row.get("total"), recorded_by=CLINICIAN, assessment_id=f"row-{index:04d}")
    if len(rows) > 1:
        app.void_assessment(episode_id, "row-0002", reason="entered in error",
                            recorded_by=CLINICIAN)
    app.close_episode(episode_id, recorded_by=CLINICIAN,
                      discharged_on=max(date.fromisoformat(r["date"]) for r in rows))
    assert assert_same_replays(app, episode_id) > len(rows)


START = date(2026, 1, 5)
answers = st.one_of(st.integers(0, 27).map(lambda t: (t, None)),
                    st.lists(st.one_of(st.integers(0, 3), st.none()), min_size=9, max_size=9)
                    .map(lambda items: (None, items)))
commands = st.lists(st.one_of(
    st.tuples(st.just("record"), st.integers(0, 35), answers),
    st.tuples(st.just("void"), st.integers(0, 30), st.none())), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(BUILTIN)), commands, st.booleans())
def test_generated_episodes_replay_the_same_as_with_the_library(
        criteria: str, steps: list[tuple[str, int, Any]], close: bool) -> None:
    app = OutcomesApplication({}, clock=lambda: NOW)
    try:
        episode_id = app.open_episode(patient_ref="pseudo-1", clinic_id="clinic-1",
                                      recorded_by=CLINICIAN, criteria=criteria,
                                      opened_on=START).episode_id
        on, recorded = START, []
        for kind, number, answer in steps:
            try:
                if kind == "record":
                    on += timedelta(days=number)
                    total, items = answer
                    recorded.append(f"a{len(recorded):02d}")
                    app.record_assessment(episode_id, instrument="PHQ-9", administered=on,
                                          total=total, items=items, recorded_by=CLINICIAN,
                                          assessment_id=recorded[-1])
                elif recorded:
                    app.void_assessment(episode_id, recorded[number % len(recorded)],
                                        reason="entered in error", recorded_by=CLINICIAN)
            except DomainError:  # e.g. voided twice: the episode stays as it was
                pass
        if close:
            app.close_episode(episode_id, discharged_on=on, recorded_by=CLINICIAN)
        assert_same_replays(app, episode_id)
    finally:
        app.close()
