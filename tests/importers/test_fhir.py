"""The FHIR reader: real example files (tests/data/<source>, copied with SOURCE.md and licence)
and one small made-up input per rule (tests/importers/data)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from importers.fhir import DERIVED, GROUPED, IN_PANEL, NOT_ASSESSMENT, read_fhir, read_fhir_file
from importers.fhir_resources import INVALID, NAIVE
from importers.records import ANSWER_CODE_MISMATCH, Skipped, SourceAssessment, UnreadableFileError

DATA = Path(__file__).parent / "data"
REAL = Path(__file__).parents[1] / "data"
AHRQ_STU3 = REAL / "smart-ahrq-depression" / "stu3-ahrq-depression-patient-phq9.json"
AHRQ_DSTU2 = REAL / "smart-ahrq-depression" / "dstu2-ahrq-depression-patient-phq9.json"
US_CORE = REAL / "hl7-us-core-phq9"
LHC = REAL / "lhc-forms" / "lforms-fhir-app-R4-phq9-Questionnaire.json"
US_CORE_ITEMS = (2, 2, 2, 2, 1, 1, 2, 0, 0, 1)  # QR answers in PHQ-9 order; item 10 "Somewhat"
Record = SourceAssessment | Skipped


def read(*paths: Path, source: str = "fhir") -> list[Record]:
    return list(read_fhir(list(paths), source=source))


def assessments(records: list[Record]) -> list[SourceAssessment]:
    return [r for r in records if isinstance(r, SourceAssessment)]


def reasons(records: list[Record]) -> Counter[str]:
    return Counter(r.reason for r in records if isinstance(r, Skipped))


def at(records: list[Record], resource: str) -> Record:
    """The record whose location ends with "#<type>/<id>"."""
    (found,) = [r for r in records if r.location.endswith(f"#{resource}")]
    return found


def item_sum(record: SourceAssessment) -> int:
    assert record.items is not None
    return sum(v for v in record.items[:9] if v is not None)


# ---- real files ---------------------------------------------------------------------------------

def test_ahrq_stu3_bundle_gives_45_phq9_assessments_from_18_patients() -> None:
    records = read(AHRQ_STU3)
    found = assessments(records)
    assert len(records) == 64  # one record per Bundle entry
    assert len(found) == 45
    assert {r.instrument for r in found} == {"PHQ-9"}
    assert len({r.patient for r in found}) == 18
    assert reasons(records) == Counter({NOT_ASSESSMENT: 19})  # the 19 Patients
    assert len({r.key for r in found}) == 45
    assert all(r.key.startswith("fhir|urn:uuid:QuestionnaireResponse/") for r in found)


def test_ahrq_stu3_reports_totals_and_items_as_given_7_disagree() -> None:
    found = assessments(read(AHRQ_STU3))
    differing = sorted(r.total for r in found if r.total != item_sum(r) and r.total is not None)
    assert differing == [12, 13, 34, 35, 35, 36, 36]  # 5 of them above the 0-27 range
    assert all(r.items is not None and len(r.items) == 10 and r.items[9] is None for r in found)


def test_ahrq_stu3_keeps_ordinals_and_flags_contradicting_answer_codes() -> None:
    records = read(AHRQ_STU3)
    first = at(records, "QuestionnaireResponse/372416")
    # By hand: all nine answers carry LA6568-5 ("Not at all" = 0) with CO-value ordinals
    # 3,2,0,2,0,1,2,3,2: seven contradict the code; the ordinals are kept.
    assert isinstance(first, SourceAssessment)
    assert first.items == (3, 2, 0, 2, 0, 1, 2, 3, 2, None)
    assert first.total == 15 and item_sum(first) == 15
    assert first.flags == (ANSWER_CODE_MISMATCH,)
    assert first.patient == "urn:uuid:Patient/TEST-12"
    assert first.administered == datetime(2020, 2, 28, 7, 6, 36, tzinfo=UTC)
    assert first.recorded_at == datetime(2020, 2, 28, 7, 6, 36, tzinfo=UTC)
    assert first.key == "fhir|urn:uuid:QuestionnaireResponse/372416"
    found = assessments(records)
    unflagged = [r for r in found if ANSWER_CODE_MISMATCH not in r.flags]
    assert len(found) - len(unflagged) == 44
    assert [r.items for r in unflagged] == [(0,) * 9 + (None,)]  # all "0": code and ordinal agree


def test_ahrq_dstu2_bundle_gives_no_assessment_and_skips_every_resource() -> None:
    records = read(AHRQ_DSTU2)
    assert assessments(records) == []
    assert len(records) == 50  # 19 Patients, 19 Conditions, 12 AllergyIntolerances
    assert reasons(records) == Counter({NOT_ASSESSMENT: 50})


def test_lhc_forms_questionnaire_is_not_an_assessment() -> None:
    assert read(LHC) == [Skipped(f"{LHC.name}#Questionnaire/44249-1-x", NOT_ASSESSMENT)]


def test_us_core_folder_gives_one_phq9_assessment_from_the_questionnaire_response() -> None:
    records = read(US_CORE)
    (found,) = assessments(records)
    assert found.instrument == "PHQ-9"
    assert found.items == US_CORE_ITEMS
    assert found.total == 12 and item_sum(found) == 12
    assert found.patient == "Patient/example"
    assert found.administered == datetime(2022, 11, 29, 20, 50, 32, 718000, tzinfo=UTC)
    assert found.key == "fhir|QuestionnaireResponse-phq-9-example.json#QuestionnaireResponse/phq-9-example"
    assert found.flags == () and not found.voided
    # the panel and its 11 members derive from the response; the Questionnaire is not one
    assert reasons(records) == Counter({DERIVED: 12, NOT_ASSESSMENT: 1})


def test_us_core_panel_alone_resolves_its_members_into_one_assessment() -> None:
    records = read(*sorted(US_CORE.glob("Observation-*.json")))
    (found,) = assessments(records)
    assert found.location.endswith("#Observation/PHQ9-panel-example-44249-1")
    assert (found.items, found.total) == (US_CORE_ITEMS, 12)  # total from valueString "12"
    assert reasons(records) == Counter({IN_PANEL: 11})


def test_us_core_item_observations_without_panel_are_grouped() -> None:
    records = read(*sorted(US_CORE.glob("Observation-PHQ9-item-*.json")))
    (found,) = assessments(records)
    assert (found.instrument, found.items, found.total) == ("PHQ-9", US_CORE_ITEMS, 12)
    first = "Observation-PHQ9-item-example-44250-9.json"
    assert found.location == f"{first}#Observation/PHQ9-item-example-44250-9"
    assert found.key == f"fhir|{found.location}"  # the smallest member key
    assert reasons(records) == Counter({GROUPED: 10})


def test_us_core_response_not_imported_leaves_the_panel_as_the_record(tmp_path: Path) -> None:
    folder = shutil.copytree(US_CORE, tmp_path / "us-core")
    response = folder / "QuestionnaireResponse-phq-9-example.json"
    doc = json.loads(response.read_text())
    response.write_text(json.dumps(doc | {"status": "in-progress"}))
    records = read(folder)
    (found,) = assessments(records)
    assert found.location.endswith("#Observation/PHQ9-panel-example-44249-1")
    assert reasons(records) == Counter({IN_PANEL: 11, "not final (in-progress)": 1, NOT_ASSESSMENT: 1})


def test_response_citing_the_lhc_questionnaire_reads_its_loinc_link_ids() -> None:
    records = read(DATA / "lhc-response.json", LHC)
    (found,) = assessments(records)
    assert (found.instrument, found.items) == ("PHQ-9", (1, 1, 0, 0, 2, 0, 0, 0, 0, 0))


# ---- item answers -------------------------------------------------------------------------------

def test_contained_questionnaire_gives_ordinals_and_published_item_order() -> None:
    # local linkIds q1..q9 and local answer codes: only the contained Questionnaire's item codes
    # and ordinalValue extensions give positions and points; the document lists item 9 first
    (found,) = assessments(read(DATA / "r4-contained-ordinal.json"))
    assert found.instrument == "PHQ-9"
    assert found.items == (3, 2, 1, 0, 1, 2, 3, 0, 1, None)
    assert found.flags == ()


def test_questionnaire_in_the_same_import_gives_item_weights() -> None:
    records = read(DATA / "same-import")
    (found,) = assessments(records)
    assert (found.instrument, found.items) == ("GAD-7", (1, 1, 2, 0, 3, 1, 0))
    assert reasons(records) == Counter({NOT_ASSESSMENT: 1})


def test_stu3_questionnaire_options_give_ordinals_to_a_response_citing_it_by_reference() -> None:
    records = read(DATA / "stu3-questionnaire.json")
    (found,) = assessments(records)
    assert (found.instrument, found.items, found.patient) == ("GAD-7", (1, 1, 2, 0, 3, 1, 0), "Patient/p4")


def test_response_without_its_questionnaire_is_an_unknown_instrument() -> None:
    records = read(DATA / "same-import" / "response.json")
    assert reasons(records) == Counter({"unknown instrument": 1})


def test_loinc_answer_codes_alone_give_points() -> None:
    (found,) = assessments(read(DATA / "la-codes-only.json"))
    assert (found.instrument, found.items, found.total) == ("GAD-7", (2, 3, 1, 0, 0, 2, 1), 9)


def test_item_10_codes_are_not_in_numeric_order() -> None:
    very, extremely, sorted_ordinal = assessments(read(DATA / "item10-codes.json"))
    assert very.items == (1,) * 9 + (2,)  # LA6575-0 Very difficult
    assert extremely.items == (1,) * 9 + (3,)  # LA6574-3 Extremely difficult
    # an ordinal 2 given by code order to LA6574-3: item 10 is never summed, the code wins
    assert (sorted_ordinal.items, sorted_ordinal.flags) == ((1,) * 9 + (3,), ())


def test_difficulty_item_alone_is_no_phq9() -> None:
    records = read(DATA / "difficulty-alone.json")
    assert at(records, "Observation/difficulty") == Skipped(
        "difficulty-alone.json#Observation/difficulty", "no scored answers")


def test_missing_or_unresolvable_answers_are_none_never_zero() -> None:
    # item 3 has no answer, item 5 is absent, item 7 is free text, item 9 a code no table knows
    (found,) = assessments(read(DATA / "missing-answer.json"))
    assert found.items == (2, 2, None, 2, None, 2, None, 2, None, None)


def test_answer_code_contradicting_its_ordinal_keeps_the_ordinal_and_flags() -> None:
    (found,) = assessments(read(DATA / "code-mismatch.json"))
    assert found.items == (2,) + (0,) * 8 + (None,)
    assert found.flags == (ANSWER_CODE_MISMATCH,)


def test_reference_naming_the_panel_decides_between_phq9_and_phq2() -> None:
    cites_panel, cites_nothing = assessments(read(DATA / "reference-names-panel.json"))
    assert (cites_panel.instrument, cites_panel.items) == ("PHQ-9", (1, 2) + (None,) * 8)
    assert (cites_nothing.instrument, cites_nothing.items) == ("PHQ-2", (1, 2))


# ---- totals and dates ---------------------------------------------------------------------------

def test_total_as_score_quantity_with_date_only_effective_time() -> None:
    (found,) = assessments(read(DATA / "total-quantity.json"))
    assert (found.instrument, found.items, found.total) == ("PHQ-9", None, 14)
    assert found.administered == date(2024, 3, 1)
    assert found.recorded_at == datetime(2024, 3, 4, 8, 0, tzinfo=UTC)  # issued, not clinical


def test_totals_that_are_not_whole_numbers_skip_the_resource() -> None:
    records = read(DATA / "total-not-whole.json")  # valueDecimal 12.5, 12.5 score, "about 12"
    assert records == [
        Skipped("total-not-whole.json#QuestionnaireResponse/decimal", "total is not a whole number"),
        Skipped("total-not-whole.json#Observation/quantity", "total is not a whole number"),
        Skipped("total-not-whole.json#Observation/string", "total is not a whole number"),
    ]


def test_clinical_times_need_an_offset_and_a_full_date() -> None:
    records = read(DATA / "dates.json")
    assert records[:3] == [
        Skipped("dates.json#Observation/naive", NAIVE),
        Skipped("dates.json#QuestionnaireResponse/naive-qr", NAIVE),
        Skipped("dates.json#Observation/month-only", "clinical date is not a full date"),
    ]
    period = at(records, "Observation/period")
    assert isinstance(period, SourceAssessment)
    assert period.administered == datetime(2024, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert (period.instrument, period.total) == ("GAD-7", 8)


# ---- statuses and keys --------------------------------------------------------------------------

def test_entered_in_error_and_cancelled_are_voided_not_final_is_skipped() -> None:
    records = read(DATA / "statuses.json")
    error = at(records, "QuestionnaireResponse/error")
    assert isinstance(error, SourceAssessment) and error.voided
    assert error.key == "fhir|http://clinic.example/forms|F-9"
    cancelled = at(records, "Observation/cancelled")
    assert isinstance(cancelled, SourceAssessment) and cancelled.voided
    amended = at(records, "Observation/amended")
    assert isinstance(amended, SourceAssessment) and not amended.voided
    assert reasons(records) == Counter({"not final (in-progress)": 1, "not final (preliminary)": 1})


def test_key_is_identifier_else_full_url_else_file_and_resource() -> None:
    keys = [r.key for r in assessments(read(DATA / "keys.json", source="clinic-a"))]
    assert keys == ["clinic-a|http://clinic.example/forms|F-1",
                    "clinic-a|urn:uuid:0b6f1f4e-6d3c-4c1e-9d0e-3f0b8a1c2d02",
                    "clinic-a|keys.json#QuestionnaireResponse/bare"]


# ---- reconciliation and resources ---------------------------------------------------------------

def test_standalone_observations_are_grouped_by_patient_instant_and_instrument() -> None:
    records = read(DATA / "standalone-items.json")
    gad7, phq2, other = assessments(records)
    # the GAD-7 total says 08:30Z, the items 09:30+01:00: the same instant
    assert (gad7.instrument, gad7.items, gad7.total) == ("GAD-7", (2, 3, 1, 0, 0, 2, 1), 9)
    assert gad7.key == "fhir|urn:uuid:Observation-gad-1"
    assert (phq2.instrument, phq2.items, phq2.total) == ("PHQ-2", (2, 1), 3)
    assert (other.patient, other.instrument, other.items) == ("Patient/p2", "PHQ-2", (3, None))
    assert reasons(records) == Counter({GROUPED: 9})


def test_stu3_panel_with_related_members() -> None:
    records = read(DATA / "stu3-panel.json")
    (found,) = assessments(records)
    assert (found.instrument, found.items, found.patient) == ("PHQ-2", (1, 3), "Patient/p3")
    assert reasons(records) == Counter({IN_PANEL: 2})


def test_unknown_instrument_missing_patient_and_other_resources_are_skipped() -> None:
    records = read(DATA / "unknown.json")
    assert [r.reason for r in records if isinstance(r, Skipped)] == [
        "unknown instrument", "unknown instrument", "no patient reference",
        NOT_ASSESSMENT, NOT_ASSESSMENT]


def test_dstu2_questionnaire_response_is_an_unsupported_version() -> None:
    assert read(DATA / "dstu2-response.json") == [
        Skipped("dstu2-response.json#QuestionnaireResponse/dstu2", INVALID)]


# ---- files --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "reason"), [
    ("not-json.json", "not JSON"),
    ("not-fhir.json", "not a FHIR resource (no resourceType)"),
])
def test_file_that_is_not_a_fhir_resource_is_unreadable(name: str, reason: str) -> None:
    with pytest.raises(UnreadableFileError) as caught:
        read_fhir_file(DATA / "unreadable" / name)
    assert caught.value.reason == reason


def test_reading_starts_on_iteration_and_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    records = read_fhir([tmp_path / "absent.json"])  # nothing read yet
    with pytest.raises(UnreadableFileError):
        next(records)


def test_unreadable_files_can_be_reported_while_the_others_import() -> None:
    errors: list[UnreadableFileError] = []
    records = list(read_fhir([DATA / "unreadable", DATA / "keys.json"], on_unreadable=errors.append))
    assert sorted(Path(e.path).name for e in errors) == ["not-fhir.json", "not-json.json"]
    assert len(assessments(records)) == 3
