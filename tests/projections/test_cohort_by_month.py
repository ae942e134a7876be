"""The cohort read model by month of discharge, on SQLite files and on PostgreSQL: closed
episodes grouped by their discharge date's month with the domain's ``cohort_figures``, open ones
in none; the discharge date kept in a column; a rebuild and one-by-one processing give the same
rows (v3 of the model)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from application.episode_streams import episode_streams
from application.outcomes import OutcomesApplication
from domain.criteria.builtin import BUILTIN
from domain.rescoring import replay
from domain.rules import cohort_figures
from projections.cohort import CohortView
from projections.runner import ReadModels, open_view

NOW = datetime(2027, 12, 31, tzinfo=UTC)


def given(app: OutcomesApplication) -> dict[str, Any]:
    def episode(rows: list[tuple[str, int]], closed: str | None, clinic: str = "clinic-a") -> Any:
        episode_id = app.open_episode(patient_ref="p", clinic_id=clinic, recorded_by="dr-1",
                                      opened_on=date(2026, 1, 5)).episode_id
        for on, total in rows:
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="dr-1",
                                  administered=date.fromisoformat(on), total=total)
        if closed:
            app.close_episode(episode_id, discharged_on=date.fromisoformat(closed),
                              recorded_by="dr-1")
        return episode_id

    return {"jan": episode([("2026-01-05", 20), ("2026-01-26", 8)], "2026-01-30"),
            "mar-a": episode([("2026-01-05", 20), ("2026-02-02", 18)], "2026-03-01"),
            "mar-b": episode([("2026-01-05", 20), ("2026-02-16", 9)], "2026-03-31"),
            "open": episode([("2026-01-05", 20), ("2026-02-16", 5)], None),
            "other": episode([("2026-01-05", 20)], "2026-03-02", clinic="clinic-b")}


def rows(view: Any) -> list[tuple[Any, ...]]:
    with view.reading() as cursor:
        cursor.execute("SELECT * FROM episode_outcomes ORDER BY episode_id")
        return [tuple(row[k] for k in row.keys()) for row in cursor.fetchall()]  # noqa: SIM118


def test_figures_by_month_of_discharge_rebuilt_and_one_by_one_alike(store):
    app = store.app(clock=lambda: NOW)
    models = ReadModels.open(app, store.views(), ["cohort"])
    try:
        ids = given(app)
        models.catch_up()
        view = models.views["cohort"]
        assert isinstance(view, CohortView) and view.version == 3
        months = view.outcomes_by_month("clinic-a")
        assert [month for month, _ in months] == ["2026-01", "2026-03"]
        january, march = (figures for _, figures in months)
        assert (january.episodes, january.evaluable, january.rates["response"]) == (1, 1, 100.0)
        assert january.median_days_to_response == 21.0
        assert (march.episodes, march.closed, march.rates["response"]) == (2, 2, 50.0)
        # the domain's function over the episodes' own outcomes gives the same figures
        # (a re-scoring's outcome "now": domain.rules.episode_outcome over the events' facts)
        names = {episode_id: name for name, episode_id in ids.items()}
        outcomes = {names[r.episode_id]: r.milestones_now for events in episode_streams(app)
                    if (r := replay(events, BUILTIN["acnp2006"], NOW)) is not None}
        assert march == cohort_figures([outcomes["mar-a"], outcomes["mar-b"]])
        assert view.outcomes("clinic-a") == cohort_figures(
            outcomes[n] for n in ("jan", "mar-a", "mar-b", "open"))
        assert view.overview("clinic-a") == (view.outcomes("clinic-a"), months)
        assert view.outcomes_by_month("clinic-none") == []

        incremental = rows(view)
        with view.reading() as cursor:
            cursor.execute("SELECT episode_id, discharged_on, discharge_month FROM "
                           "episode_outcomes")
            kept = {r["episode_id"]: (r["discharged_on"], r["discharge_month"])
                    for r in cursor.fetchall()}
        assert kept[str(ids["mar-b"])] == ("2026-03-31", "2026-03")
        assert kept[str(ids["open"])] == (None, None)

        one_by_one = open_view(CohortView, None)
        notifications = app.recorder.select_notifications(start=1, limit=10_000,
                                                          topics=view.topics)
        for n in notifications:
            one_by_one.process(app.name, [(app.mapper.to_domain_event(n), n.id)])
        assert rows(one_by_one) == incremental
        one_by_one.datastore.close()
        assert models.rebuild("cohort") == len(notifications)
        assert rows(models.views["cohort"]) == incremental
        assert models.views["cohort"].outcomes_by_month("clinic-a") == months
    finally:
        models.close()
        app.close()

