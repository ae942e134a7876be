"""``outcomes import csv`` and ``outcomes import fhir`` on a store of the test's own (a SQLite file
in a temporary folder, or a PostgreSQL ledger: tests/cli/conftest.py).

The summary (``--json``) counts what was read, recorded, opened, skipped, flagged and found twice;
the exit status is 0 when everything read was imported or deliberately skipped, 1 when a file was
unreadable (the readable ones are still imported), 2 for a usage error (nothing is imported).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_nothing_stored
from typer.testing import CliRunner, Result

from cli import app

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data"
MADE_UP = Path(__file__).parents[1] / "importers" / "data"
TRIAL = DATA / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
# The command documented in the README ("Importing real data"), with the tests/data path.
TRIAL_COMMAND = ["import", "csv", str(TRIAL), "--clinic", "trial", "--criteria", "frank1991",
                 "--patient", "PATIENT", "--day", "RELDAYS", "--anchor", "2004-01-05",
                 "--instrument", "HAM-D17", "--total", "HAMDTL17", "--baseline", "BASVAL"]


@pytest.fixture(autouse=True)
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "outcomes.sqlite"
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(path))
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "cli-test-key-0123456789")
    return path


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def summary(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_trial_file_imports_as_documented_and_a_second_run_adds_nothing() -> None:
    first = run(*TRIAL_COMMAND, "--json")
    assert first.exit_code == 0, first.output
    assert summary(first) == {
        "dry_run": False, "files": 1, "unreadable": [], "resources_read": 780,
        "assessments_recorded": 780, "duplicates": 0, "voided": 0, "episodes_opened": 172,
        "skipped": {}, "skipped_records": [], "flagged": {}, "by_instrument": {"HAM-D17": 780}}
    second = run(*TRIAL_COMMAND, "--json")
    assert second.exit_code == 0, second.output
    assert (summary(second)["assessments_recorded"], summary(second)["duplicates"],
            summary(second)["episodes_opened"]) == (0, 780, 0)


def test_dry_run_reports_and_writes_nothing(sqlite_file: Path) -> None:
    dry = run("import", "fhir", str(MADE_UP / "keys.json"), "--clinic", "c", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert (summary(dry)["dry_run"], summary(dry)["assessments_recorded"]) == (True, 3)
    real = run("import", "fhir", str(MADE_UP / "keys.json"), "--clinic", "c", "--json")
    assert summary(real)["assessments_recorded"] == 3  # the dry run stored none of them


def test_summary_table_without_json() -> None:
    result = run("import", "fhir", str(DATA / "smart-ahrq-depression"), "--clinic", "c")
    assert result.exit_code == 0, result.output
    rows = dict(tuple(cell.strip() for cell in line.split("│")[1:3])
                for line in result.stdout.splitlines() if line.startswith("│"))
    assert rows == {
        "files": "2", "resources read": "114", "assessments recorded": "45",
        "episodes opened": "18", "duplicates": "0", "voided": "0",
        "skipped: not an assessment resource": "69", "flagged: ANSWER_CODE_MISMATCH": "44",
        "flagged: SAFETY_ITEM9_POSITIVE": "25", "flagged: TOTAL_ABOVE_MAX": "5",
        "flagged: TOTAL_MISMATCH": "7", "recorded: PHQ-9": "45"}


def test_unreadable_fhir_file_exits_1_and_the_good_ones_are_imported() -> None:
    result = run("import", "fhir", str(MADE_UP / "keys.json"), str(MADE_UP / "unreadable"),
                 str(DATA / "hl7-us-core-phq9"), "--clinic", "c", "--json")
    assert result.exit_code == 1, result.output
    data = summary(result)
    assert sorted(Path(u.split(":")[0]).name for u in data["unreadable"]) == [
        "not-fhir.json", "not-json.json"]
    assert (data["assessments_recorded"], data["episodes_opened"]) == (4, 2)
    again = run("import", "fhir", str(MADE_UP / "keys.json"), str(DATA / "hl7-us-core-phq9"),
                "--clinic", "c", "--json")
    assert again.exit_code == 0, again.output
    assert (summary(again)["duplicates"], summary(again)["assessments_recorded"]) == (4, 0)


def test_a_mapping_naming_a_missing_column_is_a_usage_error_listing_the_columns(
        tmp_path: Path, sqlite_file: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("patient,date,score\np1,2026-01-05,18\n")
    result = run("import", "csv", str(path), "--clinic", "c", "--patient", "patient",
                 "--date", "when", "--instrument", "PHQ-9", "--total", "total", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (f"error: {path.name} has no column when, total; its columns: "
                             "patient, date, score\n")
    assert_nothing_stored(sqlite_file)


def test_json_summary_says_where_each_skipped_record_is(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("patient,date,total\np1,2026-01-05,18\n,2026-01-12,16\np1,2026-01-19,\n"
                    "p1,2026-01-26,twelve\n")
    result = run("import", "csv", str(path), "--clinic", "c", "--patient", "patient",
                 "--date", "date", "--instrument", "PHQ-9", "--total", "total", "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["skipped_records"] == [
        {"location": "scores.csv:3", "reason": "no patient"},
        {"location": "scores.csv:4", "reason": "no score"},
        {"location": "scores.csv:5", "reason": "unreadable value: not a number"}]
    fhir = run("import", "fhir", str(MADE_UP / "statuses.json"), "--clinic", "c", "--json")
    assert fhir.exit_code == 0, fhir.output
    assert summary(fhir)["skipped_records"] == [
        {"location": "statuses.json#QuestionnaireResponse/in-progress",
         "reason": "not final (in-progress)"},
        {"location": "statuses.json#Observation/preliminary", "reason": "not final (preliminary)"},
        {"location": "statuses.json#QuestionnaireResponse/error",
         "reason": "entered in error (not imported before)"},
        {"location": "statuses.json#Observation/cancelled",
         "reason": "entered in error (not imported before)"}]


@pytest.mark.parametrize(("options", "message"), [
    (["--anchor", "5 Jan 2004"], "--anchor: expected a date, YYYY-MM-DD"),
    (["--anchor", "2004-01-05", "--date", "RELDAYS"], "give exactly one of --date or --day"),
])
def test_usage_errors_exit_2_and_import_nothing(
        sqlite_file: Path, options: list[str], message: str) -> None:
    result = run("import", "csv", str(TRIAL), "--clinic", "trial", "--patient", "PATIENT",
                 "--day", "RELDAYS", "--instrument", "HAM-D17", "--total", "HAMDTL17", *options)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert_nothing_stored(sqlite_file)


def test_pseudonym_key_too_short_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "short")
    result = run("import", "fhir", str(MADE_UP / "keys.json"), "--clinic", "c")
    assert result.exit_code == 2
    assert "at least 16 bytes" in result.stderr


def test_without_a_key_setting_a_key_file_is_made_once(
        sqlite_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTCOMES_PSEUDONYM_KEY")
    first = run("import", "fhir", str(MADE_UP / "keys.json"), "--clinic", "c", "--json")
    key_file = sqlite_file.parent / "pseudonym.key"
    assert first.exit_code == 0 and key_file.stat().st_mode & 0o777 == 0o600
    second = run("import", "fhir", str(MADE_UP / "keys.json"), "--clinic", "c", "--json")
    assert summary(second)["duplicates"] == 3  # the same key: the same refs and ids


def test_batch_size_gives_the_same_summary_and_a_negative_one_is_a_usage_error() -> None:
    """``--batch-size`` changes the transactions only (ADR 0026): 0 is one per assessment."""
    batched = run(*TRIAL_COMMAND, "--batch-size", "50", "--json")
    assert batched.exit_code == 0, batched.output
    assert (summary(batched)["assessments_recorded"], summary(batched)["episodes_opened"]) == (
        780, 172)
    single = run(*TRIAL_COMMAND, "--batch-size", "0", "--json")
    assert (summary(single)["duplicates"], summary(single)["assessments_recorded"]) == (780, 0)
    assert run(*TRIAL_COMMAND, "--batch-size", "-1").exit_code == 2
