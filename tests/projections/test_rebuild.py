"""Read models are functions of the events: a rebuild from position 0 equals the incrementally
built model, and reprocessing events changes nothing.

The large generated history runs on the in-memory store with the read models in in-memory SQLite
databases (the same SQL; what is tested is the projections, not the files). A small history on
SQLite files covers what files add: a rebuild of a view file, and a second process sharing them.
"""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.outcomes import OutcomesApplication
from domain.errors import DomainError
from projections.base import ReadModel
from projections.runner import READ_MODELS, ReadModels

CRITERIA = ("acnp2006", "frank1991", "frank1991-rec26w", "acnp2006-symptom",
            "nhs-talking-therapies-2024", "cms159")
START = date(2026, 1, 5)


def dump(view: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a read model, in row order."""
    tables = {}
    with view.reading() as cursor:
        for statement in view.tables:
            if not statement.startswith("CREATE TABLE"):
                continue
            table = statement.split("EXISTS", 1)[1].split("(", 1)[0].strip()
            cursor.execute(f"SELECT * FROM {table} ORDER BY rowid")
            tables[table] = [tuple(row) for row in cursor.fetchall()]
    return tables


def of_topics(app: OutcomesApplication, topics: tuple[str, ...]) -> list[Any]:
    """The stored notifications of ``topics`` (what a read model reads), in order."""
    return list(app.recorder.select_notifications(start=1, limit=10**9, topics=topics))


def generate(app: OutcomesApplication, models: ReadModels, episodes: int, seed: int) -> None:
    """Episodes with random courses: improving, relapsing, back-dated entries, voids, closes;
    the read models are caught up after every command, as the API does."""
    rng = random.Random(seed)
    for n in range(episodes):
        opened = app.open_episode(patient_ref=f"pt-{n}", clinic_id=f"clinic-{n % 3}",
                                  recorded_by=f"user-{n % 4}", criteria=rng.choice(CRITERIA),
                                  opened_on=START)
        episode_id, score, day = opened.episode_id, rng.randint(8, 24), START
        recorded = []
        for _ in range(rng.randint(1, 14)):
            score = max(0, min(27, score + rng.randint(-6, 3)))
            items = None
            if rng.random() < 0.2:
                items = [rng.choice([0, 1, 2, 3, None]) for _ in range(9)]
            if rng.random() < 0.1:
                app.record_assessment(episode_id, instrument="GAD-7", administered=day,
                                      total=rng.randint(0, 21), recorded_by="nurse")
            result = app.record_assessment(
                episode_id, instrument="PHQ-9", administered=day, recorded_by="nurse",
                items=items, total=None if items else score)
            recorded.append(result.assessment.assessment_id if result.assessment else "")
            day += timedelta(days=rng.choice([7, 7, 14, 14, 21, 35]))
            models.catch_up()
        if rng.random() < 0.3 and len(recorded) > 2:
            app.void_assessment(episode_id, rng.choice(recorded[1:]), reason="wrong form",
                                recorded_by="nurse")
        if rng.random() < 0.3:
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="nurse",
                                  administered=START + timedelta(days=rng.randint(1, 60)),
                                  total=rng.randint(0, 27))
        if rng.random() < 0.4:
            # A discharge date past the clock is refused (FutureDateError): not closed then.
            with contextlib.suppress(DomainError):
                app.close_episode(episode_id, discharged_on=day, recorded_by="nurse")
        models.catch_up()


def history(folder: Path | None, episodes: int) -> tuple[OutcomesApplication, ReadModels]:
    """``episodes`` generated episodes: on SQLite files in ``folder`` (views in ``folder/views``),
    or in memory when ``folder`` is None."""
    env = ({} if folder is None else
           {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(folder / "w.sqlite")})
    app = OutcomesApplication(env, clock=lambda: datetime(2027, 6, 30, tzinfo=UTC))
    models = ReadModels.open(app, None if folder is None else folder / "views")
    generate(app, models, episodes=episodes, seed=20261130)
    return app, models


@pytest.fixture(scope="module")
def built() -> tuple[OutcomesApplication, ReadModels]:
    return history(None, episodes=300)


@pytest.fixture(scope="module")
def built_on_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[OutcomesApplication, ReadModels]:
    return history(tmp_path_factory.mktemp("rebuild"), episodes=8)


def test_the_generated_history_exercises_retractions_voids_and_closes(built):
    app, models = built
    types: dict[str, int] = {}
    for item in models.audit.trail(limit=100_000)[0]:
        types[item["type"]] = types.get(item["type"], 0) + 1
    assert types["Opened"] == 300
    for kind in ("StageRetracted", "AssessmentVoided", "Closed", "RemissionReached",
                 "RecoveryConfirmed", "RelapseDetected", "SafetyItemPositive"):
        assert types.get(kind, 0) > 0, kind
    assert models.status()["audit"] == {"position": app.recorder.max_notification_id(), "lag": 0,
                                       "state": "ok", "reason": None}


@pytest.mark.parametrize("stores", ["built", "built_on_files"])
@pytest.mark.parametrize("name", list(READ_MODELS))
def test_a_rebuild_from_zero_equals_the_incrementally_built_read_model(request, stores, name):
    app, models = request.getfixturevalue(stores)
    incremental = dump(models.views[name])
    processed = models.rebuild(name)
    assert processed == len(of_topics(app, models.views[name].topics))
    assert dump(models.views[name]) == incremental
    assert models.status()[name]["lag"] == 0


@pytest.mark.parametrize("name", list(READ_MODELS))
def test_reprocessing_events_already_tracked_changes_nothing(built, name):
    app, models = built
    view = models.views[name]
    before = dump(view)
    notifications = app.recorder.select_notifications(start=1, limit=200)
    view.process(app.name, [(app.mapper.to_domain_event(n), n.id) for n in notifications])
    assert dump(view) == before
    assert view.position(app.name) == of_topics(app, view.topics)[-1].id
    assert models.lag(name) == 0


def test_catching_up_twice_processes_nothing_the_second_time(built):
    _, models = built
    assert models.catch_up() == 0


def test_a_second_process_sharing_the_view_files_sees_the_same_rows(built_on_files):
    app, models = built_on_files
    other = ReadModels.open(app, Path(models.views["episodes"].datastore.pool.db_name).parent)
    assert other.catch_up() == 0
    assert dump(other.episodes) == dump(models.episodes)
