"""The public worked vectors (docs/clinical-rules.md §5; the repository's copy in
``tests/data/criteria-vectors/``) through the pure domain.

Each (vector, criteria key) is one test, compared the way the specification's vector checker compares the
output of ``outcomes evaluate``: events as (type, date, degree) after sorting by date and type,
``onset`` where the expected event has that key; result objects on the keys the expectation gives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from criteria_vectors import ORDER, VECTORS

from domain.criteria.builtin import get_criteria
from domain.trajectory import evaluate, parse_trajectory, render


def _cases() -> list[Any]:
    cases = []
    for vec in VECTORS:
        after = vec["assessments"] + vec.get("backdated_insert", [])
        for key, expected in vec.get("expected", {}).items():
            cases.append(pytest.param(vec, key, after, expected, id=f"{vec['id']}:{key}"))
        for key, expected in vec.get("expected_before", {}).items():
            cases.append(pytest.param(vec, key, vec["assessments"], expected,
                                      id=f"{vec['id']}:before:{key}"))
    return cases


def _document(vec: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {"instrument": vec.get("instrument", "PHQ-9"), "assessments": rows}
    if vec.get("discharge"):
        doc["discharge"] = vec["discharge"]
    return doc


def _run(vec: dict[str, Any], key: str, rows: list[dict[str, Any]]) -> Any:
    result = evaluate(parse_trajectory(_document(vec, rows)), get_criteria(key))
    # render() output must survive the JSON round trip the CLI makes
    return json.loads(json.dumps(render(result)))


def _canon(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {t: i for i, t in enumerate(ORDER)}
    return sorted(events, key=lambda e: (e.get("date") or "", rank.get(e.get("type"), 99),
                                         e.get("degree") or ""))


def _fmt(e: dict[str, Any] | None) -> str:
    if e is None:
        return "<none>"
    text = f"{e.get('type')}@{e.get('date')}"
    if e.get("degree"):
        text += f"[{e['degree']}]"
    if e.get("onset"):
        text += f" onset {e['onset']}"
    return text


def _mismatches(expected: Any, actual: Any) -> list[str]:
    if isinstance(expected, list):
        assert isinstance(actual, list), f"expected a list of events, got {actual!r}"
        exp, act = _canon(expected), _canon(actual)
        problems = [] if len(exp) == len(act) else [f"{len(act)} events, expected {len(exp)}"]
        for i in range(max(len(exp), len(act))):
            e = exp[i] if i < len(exp) else None
            a = act[i] if i < len(act) else None
            same = (e is not None and a is not None
                    and (e["type"], e["date"], e.get("degree"))
                    == (a.get("type"), a.get("date"), a.get("degree"))
                    and ("onset" not in e or e["onset"] == a.get("onset")))
            if not same:
                problems.append(f"#{i}: expected {_fmt(e)}, got {_fmt(a)}")
        return problems
    assert isinstance(actual, dict), f"expected an object, got {actual!r}"
    missing = object()
    return [f"{k}: expected {v!r}, got {actual.get(k, '<missing>')!r}"
            for k, v in expected.items() if actual.get(k, missing) != v]


def test_the_vectors_file_holds_the_spec_vectors():
    ids = [vec["id"] for vec in VECTORS]
    assert len(ids) == len(set(ids))
    assert {f"V{n}" for n in range(1, 19)} | {"V2b", "V11b", "V17b"} == set(ids)


@pytest.mark.parametrize(("vec", "key", "rows", "expected"), _cases())
def test_vector(vec, key, rows, expected):
    assert _mismatches(expected, _run(vec, key, rows)) == []


# --- V11 / V11b: a back-dated insert retracts and asserts exactly the expected decisions -----


def _keys(events: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(e["type"], e["date"], e.get("degree"), e.get("onset")) for e in events}


def _diff_cases() -> list[Any]:
    return [pytest.param(vec, key, diff, id=f"{vec['id']}:{key}")
            for vec in VECTORS for key, diff in vec.get("expected_diff", {}).items()]


@pytest.mark.parametrize(("vec", "key", "diff"), _diff_cases())
def test_backdated_insert_diff(vec, key, diff):
    before = _keys(_run(vec, key, vec["assessments"]))
    after = _keys(_run(vec, key, vec["assessments"] + vec["backdated_insert"]))
    assert sorted(before - after) == sorted(_keys(diff["retracted"]))
    assert sorted(after - before) == sorted(_keys(diff["asserted"]))


def test_both_backdated_vectors_carry_an_expected_diff():
    assert {p.id for p in _diff_cases()} == {
        "V11:frank1991", "V11:acnp2006", "V11b:frank1991", "V11b:acnp2006"}
