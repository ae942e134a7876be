"""``--dry-run`` reports exactly what the import would record (issue 8): the same summary, line
for line, as the real import on the same store, over every file in ``tests/data/`` (each CSV
with the README's mapping, each FHIR folder) and the made-up FHIR inputs of the importer tests.
Each command runs on a fresh in-memory store (``OUTCOMES_PERSISTENCE=memory``)."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data"
MADE_UP = Path(__file__).parents[1] / "importers" / "data"
# The README's commands ("Importing real data"), with the tests/data paths.
README_IMPORTS = {
    "hamd17 trial": ["csv", str(DATA / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"),
                     "--clinic", "trial", "--criteria", "frank1991", "--patient", "PATIENT",
                     "--day", "RELDAYS", "--anchor", "2004-01-05", "--instrument", "HAM-D17",
                     "--total", "HAMDTL17", "--baseline", "BASVAL"],
    "synthea": ["csv", str(DATA / "synthea-v3-csv-dbt-synthea" / "observations.csv"),
                "--clinic", "synthea", "--patient", "PATIENT", "--date", "DATE",
                "--instrument-column", "CODE", "--total", "VALUE"],
    "fhir folders": ["fhir", str(DATA / "smart-ahrq-depression"), str(DATA / "hl7-us-core-phq9"),
                     str(DATA / "lhc-forms"), "--clinic", "fhir-demo"],
    **{f"fhir {folder.name}": ["fhir", str(folder), "--clinic", "c"]
       for folder in sorted(DATA.iterdir()) if folder.is_dir() and any(folder.glob("*.json"))},
    **{f"made-up {path.name}": ["fhir", str(path), "--clinic", "c"]
       for path in sorted(MADE_UP.iterdir()) if path.suffix == ".json" or path.is_dir()},
}


@pytest.fixture(autouse=True)
def memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_PERSISTENCE", "memory")
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "dry-run-test-key-0123456789")


def _import(args: list[str], *, dry_run: bool) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["import", *args, "--json", *(["--dry-run"] if dry_run else [])])
    assert result.exit_code in (0, 1), result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary.pop("dry_run") is dry_run
    return result.exit_code, summary


def _bundle(tmp_path: Path) -> Path:
    """Two QuestionnaireResponses of two patients under one fullUrl and one id (a source that
    reuses resource URLs): two assessments in two episodes."""
    response = {"resourceType": "QuestionnaireResponse", "id": "reused", "status": "completed",
                "subject": {"reference": "Patient/p1"}, "authored": "2024-03-01T09:30:00+01:00",
                "item": [{"linkId": "/44261-6", "answer": [{"valueInteger": 11}]}]}
    other = copy.deepcopy(response)
    other["subject"] = {"reference": "Patient/p2"}
    url = "urn:uuid:0b6f1f4e-6d3c-4c1e-9d0e-3f0b8a1c2d99"
    path = tmp_path / "reused-url.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": url, "resource": response}, {"fullUrl": url, "resource": other}]}))
    return path


def test_a_dry_run_counts_a_reused_resource_url_as_the_import_records_it(tmp_path: Path) -> None:
    args = ["fhir", str(_bundle(tmp_path)), "--clinic", "c"]
    for dry_run in (True, False):
        _, summary = _import(args, dry_run=dry_run)
        assert (summary["assessments_recorded"], summary["duplicates"],
                summary["episodes_opened"]) == (2, 0, 2), dry_run


@pytest.mark.parametrize("name", list(README_IMPORTS))
def test_a_dry_run_reports_every_line_of_the_real_import(name: str) -> None:
    args = README_IMPORTS[name]
    dry_code, dry = _import(args, dry_run=True)
    real_code, real = _import(args, dry_run=False)
    assert dry == real
    assert dry_code == real_code


def test_a_dry_run_on_a_store_that_holds_an_earlier_import_reports_the_next_import(
        tmp_path: Path) -> None:
    """On one store: import A, then a dry run of B must equal the real import of B (voids,
    duplicates and new records alike)."""
    from application.outcomes import OutcomesApplication
    from importers.fhir import read_fhir
    from importers.pipeline import Importer, ImportSummary, Pseudonymiser

    def run(store: OutcomesApplication, path: Path, *, dry_run: bool) -> dict[str, Any]:
        importer = Importer(store, clinic_id="c", criteria="acnp2006", source="fhir",
                            pseudonymise=Pseudonymiser(b"dry-run-test-key-0123456789"),
                            dry_run=dry_run)
        summary = importer.run(read_fhir([path], source="fhir"), ImportSummary()).as_dict(
            skipped_records=True)
        assert summary.pop("dry_run") is dry_run
        return summary

    cases = [(MADE_UP / "void-before.json", MADE_UP / "statuses.json"),
             (_bundle(tmp_path), _bundle(tmp_path)),
             (DATA / "smart-ahrq-depression", DATA / "smart-ahrq-depression")]
    for first, then in cases:
        store = OutcomesApplication({})
        run(store, first, dry_run=False)
        position = store.recorder.max_notification_id()
        dry = run(store, then, dry_run=True)
        assert store.recorder.max_notification_id() == position  # the dry run wrote nothing
        assert dry == run(store, then, dry_run=False), then.name


def test_a_dry_run_reports_what_the_application_would_refuse(tmp_path: Path) -> None:
    """Rows the application refuses (a future date; a key repeated with other content; a
    datetime without offset) are skipped alike, dry or not."""
    path = tmp_path / "scores.csv"
    path.write_text("id,patient,date,total\n"
                    "r1,p1,2026-01-05,18\n"
                    "r2,p1,2026-01-12,16\n"
                    "r2,p1,2026-01-12,15\n"      # the key of row 3 again, other content
                    "r4,p2,2999-01-05,18\n"      # in the future: p2's episode cannot open
                    "r5,p1,2999-02-01,9\n")      # in the future
    args = ["csv", str(path), "--clinic", "c", "--patient", "patient", "--date", "date",
            "--instrument", "PHQ-9", "--total", "total", "--key", "id"]
    _, dry = _import(args, dry_run=True)
    _, real = _import(args, dry_run=False)
    assert dry == real
    assert (real["assessments_recorded"], real["episodes_opened"]) == (2, 1)


def test_a_dry_run_under_a_custom_criteria_set_reports_the_real_import() -> None:
    from application.outcomes import OutcomesApplication
    from importers.pipeline import Importer, Pseudonymiser
    from importers.tabular import CsvMapping, read_csv

    trial = DATA / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
    mapping = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                         fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
    store = OutcomesApplication({})
    store.register_criteria(criteria_id="trial-frank", base="frank1991",
                            params={"rounding": "half_up"}, source="protocol",
                            recorded_by="test")

    def run(dry_run: bool) -> dict[str, Any]:
        return Importer(store, clinic_id="trial", criteria="trial-frank", source="csv",
                        pseudonymise=Pseudonymiser(b"dry-run-test-key-0123456789"),
                        dry_run=dry_run).run(read_csv(trial, mapping)).as_dict(
                            skipped_records=True) | {"dry_run": None}

    dry = run(True)
    assert dry == run(False)
    assert (dry["assessments_recorded"], dry["episodes_opened"]) == (780, 172)
