"""The offline ``outcomes evaluate`` and ``outcomes criteria list`` commands.

Good input prints JSON on stdout; bad input exits 2 with one line on stderr naming the row and field,
and nothing on stdout. (click >= 8.2 keeps stdout and stderr apart in ``Result``.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from domain.criteria.builtin import BUILTIN

runner = CliRunner()

# SPEC §5 V1 (PHQ-9 totals): response 01-26; acnp2006 remission 03-02 (onset 02-09), recovery
# 06-22 (due 02-09 + 4 months = 06-09; 06-08 is a day early); frank1991 recovery 04-13.
V1 = [("01-05", 18), ("01-12", 16), ("01-19", 13), ("01-26", 8), ("02-02", 6), ("02-09", 4),
      ("02-16", 3), ("02-23", 4), ("03-02", 2), ("03-16", 3), ("03-30", 2), ("04-13", 2),
      ("04-27", 3), ("05-11", 2), ("05-25", 3), ("06-08", 2), ("06-22", 1)]


def trajectory(rows: list[tuple[str, int]] = V1, **extra: Any) -> dict[str, Any]:
    return {"instrument": "PHQ-9",
            "assessments": [{"date": f"2026-{d}", "total": t} for d, t in rows], **extra}


def write(tmp_path: Path, doc: Any) -> str:
    path = tmp_path / "trajectory.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def evaluate(tmp_path: Path, doc: Any, *args: str) -> Any:
    return runner.invoke(app, ["evaluate", write(tmp_path, doc), *args])


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["date"], e["degree"], e["onset"]) for e in events]


# --- good input ------------------------------------------------------------------------------


def test_a_good_trajectory_prints_the_events_as_json(tmp_path):
    result = evaluate(tmp_path, trajectory(), "--criteria", "acnp2006")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    events = json.loads(result.stdout)
    assert summary(events) == [
        ("ResponseReached", "2026-01-26", None, None),
        ("RemissionReached", "2026-03-02", "full", "2026-02-09"),
        ("RecoveryConfirmed", "2026-06-22", None, None),
    ]
    recovery = events[-1]
    assert recovery["due_date"] == "2026-06-09"
    assert recovery["assessment_id"] == "row-0017"
    assert "acnp2006" in recovery["explanation"]
    assert recovery["evidence"]["baseline"]["assessment_id"] == "row-0001"


def test_a_trajectory_can_be_read_from_stdin():
    result = runner.invoke(app, ["evaluate", "-", "--criteria", "frank1991"],
                           input=json.dumps(trajectory()))
    assert result.exit_code == 0, result.stderr
    assert summary(json.loads(result.stdout))[-1] == (
        "RecoveryConfirmed", "2026-04-13", None, None)


def test_param_overrides_change_the_decisions(tmp_path):
    # V1 under frank1991 with a 26-week recovery window: due 02-09 + 182 = 08-10, not in the data
    result = evaluate(tmp_path, trajectory(), "--criteria", "frank1991",
                      "--param", "recovery_min_days_from_full_onset=182", "--param", "rounding=none")
    assert result.exit_code == 0, result.stderr
    types = [e["type"] for e in json.loads(result.stdout)]
    assert "RecoveryConfirmed" not in types
    assert "RemissionReached" in types


def test_nhs_talking_therapies_prints_the_course_outcome(tmp_path):
    # V1 is PHQ-only: reliable improvement (18 -> 1), no paired GAD-7 so no recovery by default
    result = evaluate(tmp_path, trajectory(), "--criteria", "nhs-talking-therapies-2024")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert {k: outcome[k] for k in ("eligible", "case_at_start", "recovery",
                                    "reliable_improvement", "reliable_recovery")} == {
        "eligible": True, "case_at_start": True, "recovery": False,
        "reliable_improvement": True, "reliable_recovery": False}


def test_cms159_prints_whether_the_measure_is_met(tmp_path):
    # SPEC V17: index 2026-01-05 (16); window 2026-11-06..2027-03-06; last in window 3 -> met
    doc = {"instrument": "PHQ-9", "assessments": [
        {"date": "2026-01-05", "total": 16}, {"date": "2026-06-01", "total": 6},
        {"date": "2026-11-02", "total": 4}, {"date": "2026-12-14", "total": 7},
        {"date": "2027-02-22", "total": 3}]}
    result = evaluate(tmp_path, doc, "--criteria", "cms159")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["met"] is True
    assert outcome["window"] == {"start": "2026-11-06", "end": "2027-03-06"}


# --- bad input: exit 2, one line on stderr, nothing on stdout --------------------------------

ROW2_ITEM4 = {"instrument": "PHQ-9", "assessments": [
    {"date": "2026-01-05", "total": 15},
    {"date": "2026-01-19", "items": [1, 1, 1, 4, 0, 0, 0, 0, 0]}]}
ROW2_NAIVE_DATE = {"assessments": [
    {"date": "2026-01-05", "total": 15}, {"date": "2026-01-19T09:30:00", "total": 7}]}
ROW3_NAIVE_RECORDED_AT = {"assessments": [
    {"date": "2026-01-05", "total": 15}, {"date": "2026-01-19", "total": 7},
    {"date": "2026-02-02", "total": 4, "recorded_at": "2026-02-02T10:00:00"}]}
ROW1_NOT_A_DATE = {"assessments": [{"date": "05/01/2026", "total": 15}]}
ROW2_TOTAL_TOO_HIGH = {"assessments": [
    {"date": "2026-01-05", "total": 15}, {"date": "2026-01-19", "total": 28}]}
ROW1_NO_SCORE = {"assessments": [{"date": "2026-01-05"}]}


@pytest.mark.parametrize(("doc", "args", "fragments"), [
    pytest.param(ROW2_ITEM4, ["--criteria", "frank1991"], ["row 2", "items[3]", "item 4"],
                 id="item-4-out-of-range-in-row-2"),
    pytest.param(ROW2_NAIVE_DATE, ["--criteria", "frank1991"], ["row 2", "field date", "UTC"],
                 id="naive-datetime"),
    pytest.param(ROW3_NAIVE_RECORDED_AT, ["--criteria", "acnp2006"],
                 ["row 3", "field recorded_at"], id="naive-recorded-at"),
    pytest.param(ROW1_NOT_A_DATE, ["--criteria", "frank1991"], ["row 1", "field date"],
                 id="not-a-date"),
    pytest.param(ROW2_TOTAL_TOO_HIGH, ["--criteria", "cms159"], ["row 2", "field total"],
                 id="total-above-maximum"),
    pytest.param(ROW1_NO_SCORE, ["--criteria", "nhs-talking-therapies-2024"],
                 ["row 1", "field total"], id="no-items-and-no-total"),
    pytest.param(trajectory(), ["--criteria", "frank1992"], ["criteria", "frank1992"],
                 id="unknown-criteria"),
    pytest.param(trajectory(), ["--criteria", "frank1991", "--param", "recovery_weeks=8"],
                 ["recovery_weeks", "unknown parameter"], id="unknown-param"),
    pytest.param(trajectory(), ["--criteria", "frank1991", "--param", "rounding=ceil"],
                 ["rounding", "ceil"], id="bad-param-value"),
    pytest.param(trajectory(), ["--criteria", "frank1991|max_gap_days=0"],
                 ["max_gap_days"], id="bad-inline-param-value"),
    pytest.param(trajectory(), ["--criteria", "frank1991", "--param", "rounding"],
                 ["param", "KEY=VALUE"], id="param-without-value"),
    pytest.param('{"instrument": "PHQ-9", "assessments": [', ["--criteria", "frank1991"],
                 ["not JSON", "line 1"], id="malformed-json"),
    pytest.param({"instrument": "PHQ-9"}, ["--criteria", "frank1991"], ["assessments"],
                 id="no-assessments-list"),
    pytest.param({"instrument": "MADRS", "assessments": [{"date": "2026-01-05", "total": 30}]},
                 ["--criteria", "acnp2006"], ["document", "field instrument", "MADRS"],
                 id="unstageable-instrument"),
    pytest.param({"instrument": "BDI-II", "assessments": []}, ["--criteria", "frank1991"],
                 ["instrument", "BDI-II"], id="unknown-instrument"),
])
def test_bad_input_exits_2_with_one_line_on_stderr(tmp_path, doc, args, fragments):
    result = evaluate(tmp_path, doc, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "absent.json"),
                                 "--criteria", "frank1991"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot read")


# --- criteria list ---------------------------------------------------------------------------


def test_criteria_list_json_lists_the_six_sets_with_version_and_hash():
    result = runner.invoke(app, ["criteria", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [s["id"] for s in listed] == list(BUILTIN)
    assert len(listed) == 6
    for entry in listed:
        builtin = BUILTIN[entry["id"]]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["hash"])
        assert (entry["version"], entry["hash"], entry["kind"]) == (
            builtin.version, builtin.hash, builtin.kind)
        assert entry["params"] == builtin.params
        assert entry["source"]


def test_criteria_list_prints_a_table():
    result = runner.invoke(app, ["criteria", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    for criteria_id in BUILTIN:
        assert criteria_id in result.stdout
