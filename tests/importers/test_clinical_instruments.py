"""Importers and the instruments of SPEC §1.2 and §1.2b: PHQ-8 is its own instrument, the GAD-7
difficulty question is an 8th answer that is stored and never summed; the administration time
is kept for G2. FHIR files are in tests/importers/data (see its README)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from importers.fhir import GROUPED, read_fhir
from importers.records import Skipped, SourceAssessment
from importers.tabular import CsvMapping, read_csv

DATA = Path(__file__).parent / "data"


def records(*paths: Path) -> list[SourceAssessment | Skipped]:
    return list(read_fhir(list(paths)))


def at(found: list[SourceAssessment | Skipped], resource: str) -> SourceAssessment | Skipped:
    (record,) = [r for r in found if r.location.endswith(f"#{resource}")]
    return record


# ---- FHIR -----------------------------------------------------------------------------------

def test_a_response_citing_a_phq8_questionnaire_is_a_phq8_of_eight_items():
    record = at(records(DATA / "phq8-response.json"), "QuestionnaireResponse/phq8")
    assert isinstance(record, SourceAssessment)
    assert (record.instrument, record.items) == ("PHQ-8", (3, 2, 2, 1, 1, 1, 0, 0))


def test_eight_phq_answers_naming_no_instrument_stay_a_phq9_with_item_9_unanswered():
    # The absence of item 9 is no evidence of a PHQ-8: the safety flag must not be lost.
    record = at(records(DATA / "phq8-response.json"),
                "QuestionnaireResponse/phq9-item9-unanswered")
    assert isinstance(record, SourceAssessment)
    assert (record.instrument, record.items) == (
        "PHQ-9", (3, 2, 2, 1, 1, 1, 0, 0, None, None))


def test_a_gad7_response_keeps_its_difficulty_answer_as_the_8th():
    (record,) = records(DATA / "gad7-difficulty.json")
    assert isinstance(record, SourceAssessment)
    assert (record.instrument, record.items) == ("GAD-7", (1, 2, 1, 0, 0, 1, 1, 2))


def test_a_gad7_without_the_difficulty_question_still_has_seven_items():
    found = [r for r in records(DATA / "standalone-items.json")
             if isinstance(r, SourceAssessment) and r.instrument == "GAD-7"]
    assert [r.items for r in found] == [(2, 3, 1, 0, 0, 2, 1)]


def test_a_difficulty_observation_beside_gad7_items_of_its_instant_is_their_8th_answer():
    found = records(DATA / "standalone-items.json", DATA / "difficulty-alone.json")
    assert at(found, "Observation/difficulty") == Skipped(
        "difficulty-alone.json#Observation/difficulty", GROUPED)
    (gad,) = [r for r in found if isinstance(r, SourceAssessment) and r.instrument == "GAD-7"]
    assert gad.items == (2, 3, 1, 0, 0, 2, 1, 1)  # LA6573-5 "Somewhat difficult" = 1


def test_a_difficulty_observation_alone_is_no_assessment():
    assert records(DATA / "difficulty-alone.json") == [
        Skipped("difficulty-alone.json#Observation/difficulty", "no scored answers")]


def test_the_administration_time_is_kept_with_its_offset():
    (record,) = records(DATA / "gad7-difficulty.json")
    assert isinstance(record, SourceAssessment)
    assert record.administered == datetime(2024, 3, 1, 9, 30,
                                           tzinfo=timezone(timedelta(hours=1)))


# ---- CSV ------------------------------------------------------------------------------------

def test_csv_reads_a_phq8_and_a_gad7_with_its_difficulty_column(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(
        "patient,when,instrument,i1,i2,i3,i4,i5,i6,i7,i8\n"
        "p1,2026-01-19T17:00:00+00:00,PHQ-8,3,2,2,1,1,1,0,0\n"
        "p1,2026-01-19T09:00:00+00:00,GAD-7,1,2,1,0,0,1,1,2\n", encoding="utf-8")
    mapping = CsvMapping(patient="patient", date="when", instrument="instrument",
                         items=("i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"))
    phq8, gad7 = read_csv(path, mapping)
    assert isinstance(phq8, SourceAssessment) and isinstance(gad7, SourceAssessment)
    assert (phq8.instrument, phq8.items) == ("PHQ-8", (3, 2, 2, 1, 1, 1, 0, 0))
    assert phq8.administered == datetime(2026, 1, 19, 17, tzinfo=UTC)
    assert (gad7.instrument, gad7.items) == ("GAD-7", (1, 2, 1, 0, 0, 1, 1, 2))
