"""The shadow runs' results store answers the same on SQLite and on PostgreSQL: a run over the
same episodes (read by the events-table scan of each store) gives equal run state, changes,
episode histories and figures."""

from __future__ import annotations

from datetime import date, timedelta

from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from projections.rescorings import RescoringStore

START = date(2026, 1, 5)


def decisions(history: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """A history without the ids and times each store generated: type, date, degree."""
    return [(d.get("type"), d.get("date"), d.get("degree")) for d in history]


def results_of(app: OutcomesApplication, results: RescoringStore) -> dict[str, object]:
    ids = []
    for n in range(12):
        episode_id = app.open_episode(patient_ref=f"p{n}", clinic_id=f"c{n % 2}",
                                      recorded_by="u", criteria="frank1991",
                                      opened_on=START).episode_id
        ids.append(episode_id)
        for week, total in enumerate((20, 16, 11, 9, 6, 5, 12, 15)[: 3 + n % 6]):
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="u", total=total,
                                  administered=START + timedelta(weeks=week))
    runs = ShadowRuns(app, RescoringLog({}), results)
    run = runs.request(criteria="acnp2006", recorded_by="lead", params=None, clinic_id=None,
                       as_of=None)
    assert runs.execute(run.run_id) == "completed"
    state = results.run(run.run_id)
    assert state is not None
    changes, _ = results.changes(run.run_id, limit=100)
    index = {str(e): n for n, e in enumerate(ids)}
    return {
        "state": {k: state[k] for k in ("status", "processed", "total", "episodes", "changed",
                                        "figures")},
        "changes": sorted((index[c["episode_id"]], c["stage_now"], c["stage_new"])
                          for c in changes),
        "episodes": sorted((index[str(e)], decisions((h := results.episode(run.run_id, e)
                                                       or {})["now"]),
                            decisions(h["new"]), h["changed"]) for e in ids),
        "figures": results.figures(run.run_id)}


def test_the_results_store_answers_the_same_on_both_stores(store, tmp_path):
    sqlite_app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                      "SQLITE_DBNAME": str(tmp_path / "ref.sqlite")})
    (tmp_path / "ref").mkdir()
    (store.folder / "views").mkdir(exist_ok=True)
    reference = results_of(sqlite_app, RescoringStore(tmp_path / "ref"))
    app = store.app()
    results = (RescoringStore(store.folder / "views") if store.kind == "sqlite"
               else RescoringStore.on_postgres(store.env(), str(store.schema)))
    got = results_of(app, results)
    assert got["state"]["episodes"] == 12
    assert sum(len(e[1]) + len(e[2]) for e in got["episodes"]) > 12  # real histories compared
    assert got["changes"]  # and real differences
    assert got == reference
    app.close()


def test_a_stored_outcome_reads_back_as_outcome_from_json_reads_it():
    from domain.rules import EpisodeOutcome
    from projections.base import outcome_from_json, outcome_to_json
    from projections.rescorings import _outcome
    texts = [outcome_to_json(EpisodeOutcome()),
             outcome_to_json(EpisodeOutcome(response=True, remission=True, days_to_response=14,
                                            days_to_remission=42, closed=True, evaluable=True)),
             outcome_to_json(EpisodeOutcome(talking_therapies=True, closed=True,
                                            course={"eligible": True, "recovered": False})),
             '{"evaluable": true, "a_key_of_later": 1}',  # unknown keys are left out
             '{"days_to_response": 1.5}']  # another type: read by json
    for text in texts:
        assert _outcome(text) == outcome_from_json(text)
    assert _outcome(texts[1]).days_to_remission == 42
