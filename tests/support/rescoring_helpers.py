"""The same shadow run by the old path and the new one (imported by name: no package).

``by_the_old_path`` is today's run written out: every episode stream in id order
(``episode_streams``), ``domain.rescoring.replay`` under the run's criteria and as-of, the
clinic filter, each result as the results store keeps it (``RescoringStore._row``).
``stored_rows`` reads back what a run (in any number of workers and ranges) kept;
``todays_encoding`` gives the rows as they were written before msgspec wrote the JSON columns
(``projections.base.to_json``), and ``as_values`` parses the JSON columns of rows, so the two
encodings can be compared as values."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from application.episode_streams import episode_streams
from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog
from domain.rescoring import Rescoring, replay
from projections.base import outcome_to_json, to_json
from projections.rescorings import RescoringStore

JSON_COLUMNS = range(7, 14)  # criteria_now ... outcome_new, in table order


def by_the_old_path(app: OutcomesApplication, log: RescoringLog, run_id: UUID
                    ) -> dict[str, tuple[Any, ...]]:
    """Episode id -> the result row the run should keep."""
    run: Rescoring = log.repository.get(run_id)
    criteria, rows = run.criteria_set, {}
    for events in episode_streams(app):
        result = replay(events, criteria, run.as_of)
        if result is not None and run.clinic_id in (None, result.clinic_id):
            rows[str(result.episode_id)] = RescoringStore._row(run_id, criteria.hash, result)
    return rows


def stored_rows(store: RescoringStore, run_id: UUID) -> dict[str, tuple[Any, ...]]:
    """Episode id -> the result row the run kept (columns in table order)."""
    with store._cursor() as cursor:
        cursor.execute("SELECT * FROM rescoring_results WHERE run_id = ?", (str(run_id),))
        rows = cursor.fetchall()
    return {r["episode_id"]: tuple(r[k] for k in r.keys()) for r in rows}  # noqa: SIM118


def counts(store: RescoringStore, run_id: UUID) -> dict[str, Any]:
    """A run's status and counts, and its figures."""
    state = store.run(run_id) or {}
    return {k: state.get(k) for k in ("status", "processed", "total", "episodes", "changed",
                                      "figures")}


def todays_encoding(app: OutcomesApplication, log: RescoringLog, run_id: UUID
                    ) -> dict[str, tuple[Any, ...]]:
    """Episode id -> the result row of ``by_the_old_path`` with its JSON columns as
    ``projections.base.to_json`` writes them (sorted keys, ``", "`` and ``": "``)."""
    run: Rescoring = log.repository.get(run_id)
    criteria, rows = run.criteria_set, {}
    for events in episode_streams(app):
        r = replay(events, criteria, run.as_of)
        if r is not None and run.clinic_id in (None, r.clinic_id):
            rows[str(r.episode_id)] = (
                str(run_id), str(r.episode_id), criteria.hash, r.clinic_id, int(r.changed),
                r.stage_now, r.stage_new, to_json(r.criteria_now),
                outcome_to_json(r.milestones_now), outcome_to_json(r.milestones_new),
                to_json(r.diff), to_json(r.now), to_json(r.new),
                to_json(r.outcome_new) if r.outcome_new is not None else None, r.error)
    return rows


def as_values(rows: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """``rows`` with each JSON column parsed (``json.loads``; NULL stays None)."""
    return {key: tuple(json.loads(v) if n in JSON_COLUMNS and v is not None else v
                       for n, v in enumerate(row)) for key, row in rows.items()}
