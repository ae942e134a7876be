"""A shadow run split into episode-id ranges, in worker processes, keeps exactly the results of
today's run (``rescoring_helpers.by_the_old_path``) on SQLite and PostgreSQL: the whole store,
one clinic, an as-of before later recordings, and a run whose ranges were interrupted and
resumed one by one."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from rescoring_helpers import as_values, by_the_old_path, counts, stored_rows, todays_encoding

import application.rescoring as rescoring
from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns, id_ranges, replay_range
from projections.rescorings import RescoringStore

START = date(2026, 1, 5)


def record_courses(app: OutcomesApplication, rng: random.Random, count: int,
                   ids: list[Any] | None = None, new_ids: list[UUID] | None = None) -> list[Any]:
    """``count`` new PHQ-9 courses in two clinics (ids ``new_ids``, else random), or more weeks
    of the episodes ``ids``."""
    made = []
    for n in range(count):
        if ids is None:
            episode_id = app.open_episode(patient_ref=f"p{n}", clinic_id=f"c{n % 2}",
                                          recorded_by="u", criteria="frank1991",
                                          opened_on=START,
                                          episode_id=new_ids[n] if new_ids else None).episode_id
            first = 0
        else:
            episode_id, first = ids[n], 20
        made.append(episode_id)
        score = rng.randint(12, 26)
        for week in range(first, first + rng.randint(2, 9)):
            score = max(0, min(27, score + rng.randint(-6, 3)))
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="u", total=score,
                                  administered=START + timedelta(weeks=week))
    return made


def results_store(store: Any) -> RescoringStore:
    if store.kind == "sqlite":
        (store.folder / "views").mkdir(exist_ok=True)
        return RescoringStore(store.folder / "views")
    return RescoringStore.on_postgres(store.env(), str(store.schema))


def test_a_run_in_workers_keeps_the_results_of_todays_run(store):
    app = store.app()
    rng = random.Random(12)
    ids = record_courses(app, rng, 24)
    as_of = datetime.now(UTC)
    record_courses(app, rng, 6, ids=ids[:6])  # recorded after the as-of
    record_courses(app, rng, 4)  # opened after it
    log, results = RescoringLog({}), results_store(store)
    runs = ShadowRuns(app, log, results)
    for clinic, moment, workers in ((None, None, 3), ("c1", None, 2), (None, as_of, 2)):
        run = runs.request(criteria="acnp2006", clinic_id=clinic, as_of=moment, recorded_by="l")
        assert runs.execute(run.run_id, workers=workers) == "completed"
        expected = by_the_old_path(app, log, run.run_id)
        assert stored_rows(results, run.run_id) == expected
        # the JSON columns read back as the values today's encoding (json) wrote
        assert as_values(expected) == as_values(todays_encoding(app, log, run.run_id))
        assert len(results.ranges(run.run_id)) == workers
        state = counts(results, run.run_id)
        assert (state["status"], state["processed"], state["total"]) == ("completed", 28, 28)
        # every episode; clinic c1's 14; the 24 that existed at the as-of
        assert state["episodes"] == len(expected) == (14 if clinic else 24 if moment else 28)
        assert state["changed"] == sum(row[4] for row in expected.values())
        assert state["figures"] == results.figures(run.run_id)
        assert log.repository.get(run.run_id).completed
    assert {r[1] for r in stored_rows(results, run.run_id).values()} <= {str(i) for i in ids}
    app.close()


class StopAfter:
    """A stop flag that is set once it has been asked ``n`` times."""

    def __init__(self, n: int) -> None:
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_each_range_resumes_on_its_own(store, monkeypatch):
    monkeypatch.setattr(rescoring, "BATCH", 3)
    app = store.app()
    # 20 episodes spread evenly over the id space: 7, 7 and 6 in the three ranges
    record_courses(app, random.Random(7), 20,
                   new_ids=[UUID(int=(2 * k + 1) * 2**128 // 40) for k in range(20)])
    log, results = RescoringLog({}), results_store(store)
    runs = ShadowRuns(app, log, results)
    run = runs.request(criteria="acnp2006", recorded_by="l")
    results.create_ranges(run.run_id, id_ranges(3), 20)
    spans = results.ranges(run.run_id)
    job = rescoring.RangeJob(run.run_id, log.repository.get(run.run_id).criteria,
                             log.repository.get(run.run_id).as_of, None)
    # range 0 done, range 1 stopped part way (after its first batch), range 2 not started
    assert replay_range(app, results, job, spans[0]) is True
    assert replay_range(app, results, job, spans[1], StopAfter(4)) is False
    part = results.ranges(run.run_id)
    assert [s["done"] for s in part] == [True, False, False]
    assert part[1]["processed"] == 4 and part[1]["last_episode_id"] is not None
    assert results.run(run.run_id)["processed"] == part[0]["processed"] + 4
    # resumed in two workers: the run a single uninterrupted pass would have kept
    assert runs.execute(run.run_id, workers=2) == "completed"
    assert [s["done"] for s in results.ranges(run.run_id)] == [True, True, True]
    assert stored_rows(results, run.run_id) == by_the_old_path(app, log, run.run_id)
    state = counts(results, run.run_id)
    assert (state["processed"], state["total"], state["episodes"]) == (20, 20, 20)
    app.close()


def test_a_run_interrupted_before_ranges_existed_resumes_as_one_range(store):
    app = store.app()
    record_courses(app, random.Random(8), 10)
    log, results = RescoringLog({}), results_store(store)
    runs = ShadowRuns(app, log, results)
    run = runs.request(criteria="acnp2006", recorded_by="l")
    expected = by_the_old_path(app, log, run.run_id)
    # as the code before ranges left it: the first 4 episodes' results and their resume point
    first = sorted(expected)[:4]
    with results._cursor(commit=True) as cursor:
        for episode_id in first:
            cursor.execute("INSERT INTO rescoring_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           expected[episode_id])
        cursor.execute("UPDATE rescoring_runs SET status = 'interrupted', processed = 4, "
                       "total = 10, episodes = 4, changed = ?, last_episode_id = ? "
                       "WHERE run_id = ?", (sum(expected[e][4] for e in first), first[-1],
                                            str(run.run_id)))
    assert runs.execute(run.run_id, workers=3) == "completed"
    assert len(results.ranges(run.run_id)) == 1
    assert stored_rows(results, run.run_id) == expected
    state = counts(results, run.run_id)
    assert (state["processed"], state["total"], state["episodes"]) == (10, 10, 10)
    assert state["changed"] == sum(row[4] for row in expected.values())
    app.close()
