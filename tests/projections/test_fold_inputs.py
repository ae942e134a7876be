"""The fold-inputs read model holds, per episode, exactly the facts a re-scoring reads from the
replayed aggregate (``domain.rescoring.facts_of``): assessments recorded, re-recorded with
items and voided, decisions asserted and retracted by a criteria adoption, discharge; and a run
that reads it keeps today's results, falling back to the events for the episodes it cannot
answer (changed after its position, or after the run's as-of), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rescoring_helpers import by_the_old_path, counts, stored_rows
from test_rescoring_ranges import record_courses, results_store

import application.rescoring as rescoring
from application.episode_streams import episode_streams
from application.outcomes import OutcomesApplication
from application.rescoring import RangeJob, RescoringLog, ShadowRuns, id_ranges, replay_range
from domain.rescoring import as_known_at, facts_of
from projections.fold_inputs import FoldInputsView, facts
from projections.runner import ReadModels

START = date(2026, 1, 5)
LATER = datetime(9999, 1, 1, tzinfo=UTC)


def varied(app: OutcomesApplication) -> list[Any]:
    """Episodes with every kind of event the read model follows."""
    ids = record_courses(app, random.Random(3), 8)
    app.record_assessment(ids[0], instrument="PHQ-9", recorded_by="u", assessment_id="x1",
                          items=[3, 3, 2, 2, 3, 2, 1, 2, 1], administered=START + timedelta(days=1))
    app.record_assessment(ids[0], instrument="GAD-7", recorded_by="u", total=15,
                          administered=START + timedelta(days=2))
    app.void_assessment(ids[1], app.assessments(ids[1])[0].assessment_id, reason="error",
                        recorded_by="u")
    app.close_episode(ids[2], discharged_on=START + timedelta(weeks=30), recorded_by="u")
    app.adopt_criteria(ids[3], criteria="acnp2006", reason="policy", recorded_by="u")
    return ids


def models_of(app: OutcomesApplication, store: Any) -> ReadModels:
    return ReadModels.open(app, store.views(), [FoldInputsView.name])


def view_of(models: ReadModels) -> FoldInputsView:
    view = models.view(FoldInputsView.name)
    assert isinstance(view, FoldInputsView)
    return view


def counting_replays(monkeypatch: Any) -> list[str]:
    """The episodes the run replays from their events (one process)."""
    replayed: list[str] = []
    original = rescoring.replay

    def replay(events: Any, criteria: Any, as_of: Any) -> Any:
        replayed.append(str(events[0].originator_id))
        return original(events, criteria, as_of)

    monkeypatch.setattr(rescoring, "replay", replay)
    return replayed


def test_each_row_holds_the_facts_of_the_replayed_episode(store):
    app = store.app()
    varied(app)
    models = models_of(app, store)
    models.catch_up([FoldInputsView.name])
    rows = list(view_of(models).rows(None, None))
    streams = list(episode_streams(app))
    assert [r["episode_id"] for r in rows] == [str(s[0].originator_id) for s in streams]
    for row, events in zip(rows, streams, strict=True):
        assert facts(row) == facts_of(*as_known_at(events, LATER))
    halves = [list(view_of(models).rows(*span)) for span in id_ranges(2)]
    assert [row for half in halves for row in half] == rows
    models.close()
    app.close()


def test_a_run_from_the_read_model_keeps_todays_results(store, monkeypatch):
    app = store.app()
    ids = varied(app)
    as_of = datetime.now(UTC)
    record_courses(app, random.Random(4), 2, ids=ids[4:6])  # recorded after the as-of
    models = models_of(app, store)
    log, results = RescoringLog({}), results_store(store)
    runs = ShadowRuns(app, log, results, models)
    replayed = counting_replays(monkeypatch)
    for moment, fallback in ((None, set()), (as_of, {str(i) for i in ids[4:6]})):
        replayed.clear()
        run = runs.request(criteria="acnp2006", as_of=moment, recorded_by="l")
        assert runs.execute(run.run_id, workers=1) == "completed"
        assert stored_rows(results, run.run_id) == by_the_old_path(app, log, run.run_id)
        assert set(replayed) == fallback  # the rest came from the read model
        assert counts(results, run.run_id)["episodes"] == 8
    # in two workers, reading the read model too
    run = runs.request(criteria="frank1991-rec26w", recorded_by="l")
    assert runs.execute(run.run_id, workers=2) == "completed"
    assert stored_rows(results, run.run_id) == by_the_old_path(app, log, run.run_id)
    models.close()
    app.close()


def test_episodes_changed_after_the_read_models_position_are_read_from_their_events(
        store, monkeypatch):
    app = store.app()
    ids = varied(app)
    models = models_of(app, store)
    models.catch_up([FoldInputsView.name])
    changed = record_courses(app, random.Random(5), 2, ids=ids[6:8])  # after its position
    opened = record_courses(app, random.Random(6), 1)  # not in it at all
    log, results = RescoringLog({}), results_store(store)
    run = ShadowRuns(app, log, results).request(criteria="acnp2006", recorded_by="l")
    results.create_ranges(run.run_id, id_ranges(1), 9)
    replayed = counting_replays(monkeypatch)
    described = log.repository.get(run.run_id)
    job = RangeJob(run.run_id, described.criteria, described.as_of, None)
    assert replay_range(app, results, job, results.ranges(run.run_id)[0], view=view_of(models))
    assert sorted(replayed) == sorted(str(i) for i in [*changed, *opened])
    assert stored_rows(results, run.run_id) == by_the_old_path(app, log, run.run_id)
    models.close()
    app.close()


def test_an_erasure_recorded_after_the_read_models_position_does_not_stop_a_run(store):
    """An ErasureCompleted stored after the read model's position (a run while the service
    erases a patient) is no episode to re-read: reproduced, the run raised AssertionError on
    the Erasure aggregate's events."""
    from domain.erasure import Erasure

    app = store.app()
    ids = varied(app)
    models = models_of(app, store)
    models.catch_up([FoldInputsView.name])
    app.save(Erasure.complete(key_ids=["k-unrelated"], episode_ids=[], erased_by="admin-1",
                              reason="request", erased_at=datetime(2026, 2, 1, tzinfo=UTC)))
    log, results = RescoringLog({}), results_store(store)
    run = ShadowRuns(app, log, results).request(criteria="acnp2006", recorded_by="l")
    results.create_ranges(run.run_id, id_ranges(1), len(ids))
    described = log.repository.get(run.run_id)
    job = RangeJob(run.run_id, described.criteria, described.as_of, None)
    assert replay_range(app, results, job, results.ranges(run.run_id)[0], view=view_of(models))
    assert stored_rows(results, run.run_id) == by_the_old_path(app, log, run.run_id)
    assert counts(results, run.run_id)["episodes"] == len(ids)
    models.close()
    app.close()
