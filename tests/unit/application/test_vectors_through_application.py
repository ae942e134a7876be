"""The public vectors (docs/clinical-rules.md §5, tests/data/criteria-vectors/) through the application.

Each row is recorded one by one, as a clinic would, and the stage events are read back from the
event store. The comparison is the one the specification's checker makes on ``outcomes evaluate``:
event lists as (type, date, degree) sorted by date and type, ``onset`` where the expectation gives
it; course results (NHS TT, CMS159) on the keys the expectation gives. The pure fold must reach the
same decisions from the same rows (G1: the order of arrival does not matter).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from criteria_vectors import ORDER, VECTORS

from application.outcomes import CommandResult, OutcomesApplication
from domain.criteria.builtin import get_criteria
from domain.trajectory import evaluate, parse_trajectory

CLINICIAN = "clinician-0042"


def _cases() -> list[Any]:
    """(vector, key, rows) like the checker: ``expected`` on every row, ``expected_before`` on
    the rows before the back-dated insert."""
    cases = []
    for vec in VECTORS:
        rows = vec["assessments"]
        for key, expected in vec["expected"].items():
            cases.append(pytest.param(vec, key, rows + vec.get("backdated_insert", []), expected,
                                      id=f"{vec['id']}-{key}"))
        for key, expected in vec.get("expected_before", {}).items():
            cases.append(pytest.param(vec, key, rows, expected, id=f"{vec['id']}-before-{key}"))
    return cases


def _diff_cases() -> list[Any]:
    return [pytest.param(vec, key, id=f"{vec['id']}-{key}")
            for vec in VECTORS for key in vec.get("expected_diff", {})]


def canon(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(events, key=lambda e: (e.get("date") or "", rank.get(e.get("type") or "", 99),
                                         e.get("degree") or ""))


def view(event: dict[str, Any], with_onset: bool) -> tuple[Any, ...]:
    core = (event.get("type"), event.get("date"), event.get("degree"))
    return (*core, event.get("onset")) if with_onset else core


def assert_events_match(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The checker's comparison: same length, (type, date, degree) pairwise, onset where given."""
    exp, act = canon(expected), canon(actual)
    masks = ["onset" in e for e in exp] + [True] * max(0, len(act) - len(exp))
    assert [view(a, m) for a, m in zip(act, masks, strict=False)] == \
        [view(e, m) for e, m in zip(exp, masks, strict=False)]


def decision(event: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a decision (StageDecision.key) and the rule that made it."""
    return (event["type"], event["date"], event["degree"], event["onset"], event["assessment_id"],
            event["rule"])


def open_for(app: OutcomesApplication, vec: dict[str, Any], key: str,
             rows: list[dict[str, Any]]) -> UUID:
    """Given an episode opened under ``key`` on the vector's instrument, on its first date."""
    first = min(date.fromisoformat(r["date"]) for r in rows)
    return app.open_episode(patient_ref=f"pseudo-{vec['id']}", clinic_id="clinic-1",
                            recorded_by=CLINICIAN, criteria=key, instrument=vec["instrument"],
                            opened_on=first).episode_id


def record_rows(app: OutcomesApplication, episode_id: UUID, vec: dict[str, Any],
                rows: list[dict[str, Any]], first_row: int = 1) -> list[CommandResult]:
    """Record each row as one command; ids ``row-0001``... as the trajectory reader names them."""
    return [app.record_assessment(
        episode_id, instrument=row.get("instrument", vec["instrument"]),
        administered=date.fromisoformat(row["date"]), items=row.get("items"),
        total=row.get("total"), recorded_by=CLINICIAN, assessment_id=f"row-{index:04d}")
        for index, row in enumerate(rows, start=first_row)]


def pure_fold(vec: dict[str, Any], key: str, rows: list[dict[str, Any]]) -> Any:
    doc = {"instrument": vec["instrument"], "assessments": rows}
    if vec.get("discharge"):
        doc["discharge"] = vec["discharge"]
    return evaluate(parse_trajectory(doc), get_criteria(key))


@pytest.mark.parametrize(("vec", "key", "rows", "expected"), _cases())
def test_vector_recorded_row_by_row(app: OutcomesApplication, vec: dict[str, Any], key: str,
                                    rows: list[dict[str, Any]], expected: Any) -> None:
    # Given an episode under the key's criteria set
    episode_id = open_for(app, vec, key, rows)
    # When every row is recorded, one command each
    record_rows(app, episode_id, vec, rows)
    fold_result = pure_fold(vec, key, rows)
    history = app.stage_history(episode_id)
    # Then the stored decisions are the ones the pure fold makes (evidence aside: a decision that
    # still holds is not re-asserted when only its evidence moves, e.g. the baseline in V11b) ...
    assert [decision(e) for e in history] == [decision(e.as_dict()) for e in fold_result.events]
    # ... and the expected ones
    if isinstance(expected, list):
        assert_events_match(history, expected)
        return
    # Course-level sets decide at discharge
    discharged_on = vec.get("discharge") or max(r["date"] for r in rows)
    closed = app.close_episode(episode_id, discharged_on=date.fromisoformat(discharged_on),
                               recorded_by=CLINICIAN)
    assert closed.outcome is not None
    outcome = closed.outcome.as_json()
    assert {k: outcome.get(k, "<missing>") for k in expected} == expected
    assert outcome == dict(fold_result.outcome)


def _diff_view(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [view(e, True) for e in canon(events)]


@pytest.mark.parametrize(("vec", "key"), _diff_cases())
def test_backdated_insert_retracts_and_asserts_exactly_the_diff(
        app: OutcomesApplication, vec: dict[str, Any], key: str) -> None:
    # Given the rows as recorded before the paper form turned up
    rows, insert = vec["assessments"], vec["backdated_insert"]
    episode_id = open_for(app, vec, key, rows + insert)
    record_rows(app, episode_id, vec, rows)
    assert_events_match(app.stage_history(episode_id), vec["expected_before"][key])
    before = {e["stage_id"]: e for e in app.stage_history(episode_id)}
    # When the back-dated assessment is recorded
    (result,) = record_rows(app, episode_id, vec, insert, first_row=len(rows) + 1)
    # Then the command withdraws exactly the decisions that no longer hold, naming them ...
    diff = vec["expected_diff"][key]
    withdrawn = [r.as_json() for r in result.retracted]
    assert {r["type"] for r in withdrawn} == {"StageRetracted"}
    assert all(r["stage_id"] in before for r in withdrawn)
    retracted = [before[r["stage_id"]] for r in withdrawn]
    assert [(r["retracted_type"], r["date"]) for r in withdrawn] == \
        [(e["type"], e["date"]) for e in retracted]
    assert _diff_view(retracted) == _diff_view(diff["retracted"])
    # ... asserts exactly the new ones ...
    assert _diff_view([e.as_json() for e in result.stage_events]) == _diff_view(diff["asserted"])
    # ... and the history is the expected one after the insert
    assert_events_match(app.stage_history(episode_id), vec["expected"][key])
