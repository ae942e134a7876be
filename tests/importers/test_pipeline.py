"""The import pipeline on the in-memory application: every record goes through
``OutcomesApplication`` (events), exactly as an HTTP client's would.

Real files (tests/data/<source>, copied with SOURCE.md and licence): the HAM-D17 trial file under
frank1991 and acnp2006 (its stage events equal the pure fold over the same rows, read with the
csv module alone), Synthea's observations.csv, the AHRQ and US Core FHIR examples. Small inputs
made for one rule each: whole-number totals, day offsets and baselines, keys, duplicates, dry
runs, entered-in-error, pseudonymisation, PHQ-A and PHQ-2 kept out of the PHQ-9 fold.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from application.outcomes import OutcomesApplication
from domain.criteria.builtin import get_criteria
from domain.criteria.fold import Observation, fold
from domain.episode import Episode
from importers.fhir import DERIVED, NOT_ASSESSMENT, read_fhir
from importers.pipeline import Importer, ImportSummary, Pseudonymiser, episode_id
from importers.records import UnreadableFileError
from importers.tabular import CsvMapping, read_csv

NOW = datetime(2027, 12, 31, tzinfo=UTC)
KEY = b"pipeline-test-key-0123456789"
REAL = Path(__file__).parents[1] / "data"
DATA = Path(__file__).parent / "data"
TRIAL = REAL / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_SOURCE = "csv:antidepressant_data.csv"
ANCHOR = date(2004, 1, 5)  # the trial file has day offsets only: any fixed day 0 will do
TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=ANCHOR,
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
SYNTHEA = REAL / "synthea-v3-csv-dbt-synthea" / "observations.csv"
SYNTHEA_MAPPING = CsvMapping(patient="PATIENT", date="DATE", instrument="CODE", total="VALUE")
AHRQ_STU3 = REAL / "smart-ahrq-depression" / "stu3-ahrq-depression-patient-phq9.json"
AHRQ_DSTU2 = REAL / "smart-ahrq-depression" / "dstu2-ahrq-depression-patient-phq9.json"
US_CORE = REAL / "hl7-us-core-phq9"
LHC = REAL / "lhc-forms" / "lforms-fhir-app-R4-phq9-Questionnaire.json"
NOT_WHOLE = "unreadable value: not a whole number"
NOT_IMPORTED = "entered in error (not imported before)"


@pytest.fixture
def app() -> OutcomesApplication:
    return OutcomesApplication(clock=lambda: NOW)


def importer(app: OutcomesApplication, *, criteria: str = "acnp2006", clinic: str = "trial",
             source: str = TRIAL_SOURCE, key: bytes = KEY, dry_run: bool = False) -> Importer:
    return Importer(app, clinic_id=clinic, criteria=criteria, source=source,
                    pseudonymise=Pseudonymiser(key), dry_run=dry_run)


def import_csv(app: OutcomesApplication, path: Path, mapping: CsvMapping,
               **options: Any) -> ImportSummary:
    return importer(app, **options).run(read_csv(path, mapping))


def import_fhir(app: OutcomesApplication, *paths: Path, **options: Any) -> ImportSummary:
    return importer(app, source="fhir", clinic="fhir-clinic", **options).run(
        read_fhir(list(paths), source="fhir"))


def episode_of(patient: str, *, source: str = TRIAL_SOURCE, clinic: str = "trial",
               key: bytes = KEY) -> UUID:
    return episode_id(clinic, Pseudonymiser(key)(source, patient))


def position(app: OutcomesApplication) -> int:
    return app.recorder.max_notification_id() or 0


def stored(app: OutcomesApplication) -> list[Any]:
    """Every stored notification (raw: topic and JSON state), in order."""
    return list(app.recorder.select_notifications(start=1, limit=100_000))


def stored_state(notification: Any) -> str:
    """A stored event's JSON state, without the criteria definition an Opened event carries
    (the same published text for every episode: "ACNP 2006" is no patient's id)."""
    state = json.loads(notification.state)
    if notification.topic == Episode.Opened.TOPIC:
        del state["criteria"]
    return json.dumps(state)


def stored_events(app: OutcomesApplication) -> list[Episode.Event]:
    return [app.mapper.to_domain_event(n) for n in stored(app)]


def counts(summary: ImportSummary) -> dict[str, Any]:
    data = summary.as_dict()
    del data["dry_run"]
    return data


def instruments_in(value: Any) -> Iterator[str]:
    """Every ``instrument`` named anywhere in a stage event's evidence."""
    if isinstance(value, dict):
        for name, inner in value.items():
            if name == "instrument":
                yield inner
            else:
                yield from instruments_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from instruments_in(inner)


# ---- the HAM-D17 trial file ----------------------------------------------------------------------

def trial_trajectories() -> dict[str, list[Observation]]:
    """The trial file read with the csv module alone: BASVAL at day 0, HAMDTL17 at RELDAYS."""
    def whole(text: str) -> int:
        assert float(text).is_integer(), text
        return int(float(text))

    trajectories: dict[str, list[Observation]] = {}
    with TRIAL.open(newline="") as handle:
        for row in csv.DictReader(handle):
            patient = row["PATIENT"]
            points = trajectories.setdefault(
                patient, [Observation(f"{patient}-0", "HAM-D17", ANCHOR, total=whole(row["BASVAL"]))])
            points.append(Observation(
                f"{patient}-{row['VISIT']}", "HAM-D17",
                ANCHOR + timedelta(days=whole(row["RELDAYS"])), total=whole(row["HAMDTL17"])))
    return trajectories


def decisions(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((e["type"], e["date"], e["degree"], e["onset"], e["due_date"], e["rule"])
                  for e in events)


# Pinned from the runs (and equal to the pure fold, asserted below): decision events by type and
# degree, episodes by current stage. 62 of the 172 baselines (BASVAL 4..15) are below HAM-D17's
# episode threshold of 16, so nothing else is evaluated for them.
TRIAL_FIGURES = {
    "frank1991": {
        "events": {("BaselineBelowThreshold", None): 62, ("ResponseReached", None): 40,
                   ("RemissionReached", "partial"): 30, ("RemissionReached", "full"): 11,
                   ("RelapseDetected", None): 2},
        "stages": {"below_threshold": 62, "episode": 61, "response": 10,
                   "partial_remission": 26, "remission": 11, "relapse": 2},
    },
    "acnp2006": {
        "events": {("BaselineBelowThreshold", None): 62, ("ResponseReached", None): 40,
                   ("RemissionReached", "full"): 7},
        "stages": {"below_threshold": 62, "episode": 70, "response": 33, "remission": 7},
    },
}


@pytest.fixture(scope="module", params=["frank1991", "acnp2006"])
def trial(request: pytest.FixtureRequest) -> tuple[str, OutcomesApplication, ImportSummary]:
    """The trial file imported once per criteria set (read-only for the tests that use it)."""
    app = OutcomesApplication(clock=lambda: NOW)
    summary = import_csv(app, TRIAL, TRIAL_MAPPING, criteria=request.param)
    return request.param, app, summary


def test_trial_file_gives_172_episodes_and_780_assessments(
        trial: tuple[str, OutcomesApplication, ImportSummary]) -> None:
    criteria, app, summary = trial
    # 608 rows + one baseline (BASVAL, day 0) per patient: 780 records, all recorded
    assert counts(summary) == {
        "files": 0, "unreadable": [], "resources_read": 780, "assessments_recorded": 780,
        "duplicates": 0, "voided": 0, "episodes_opened": 172, "skipped": {}, "flagged": {},
        "by_instrument": {"HAM-D17": 780}}
    episodes = [app.get_episode(episode_of(p)) for p in trial_trajectories()]
    assert {(e.instrument, e.criteria["id"], e.clinic_id) for e in episodes} == {
        ("HAM-D17", criteria, "trial")}
    assert sum(len(e.assessments) for e in episodes) == 780
    first = app.get_episode(episode_of("1503"))
    assert first.opened_on == ANCHOR
    assert sorted((a.administered_on, a.reported_total) for a in first.assessments.values()) == [
        (ANCHOR, 32), (date(2004, 1, 12), 21), (date(2004, 1, 19), 20), (date(2004, 2, 2), 19),
        (date(2004, 2, 16), 17)]


def test_trial_stage_events_equal_the_pure_fold_over_the_same_rows(
        trial: tuple[str, OutcomesApplication, ImportSummary]) -> None:
    criteria, app, _ = trial
    criteria_set = get_criteria(criteria)
    for patient, points in trial_trajectories().items():
        expected = [d.as_dict() for d in fold(points, criteria_set, instrument="HAM-D17").events]
        history = app.stage_history(episode_of(patient), include_retracted=True)
        assert decisions(history) == decisions(expected), patient
        assert not any(e["retracted"] for e in history)  # rows arrive in date order


def test_trial_figures_per_criteria_set(
        trial: tuple[str, OutcomesApplication, ImportSummary]) -> None:
    criteria, app, _ = trial
    patients = list(trial_trajectories())
    events = [e for p in patients for e in app.stage_history(episode_of(p))]
    stages = Counter(app.get_episode(episode_of(p)).stage for p in patients)
    assert Counter((e["type"], e["degree"]) for e in events) == TRIAL_FIGURES[criteria]["events"]
    assert stages == TRIAL_FIGURES[criteria]["stages"]


def test_importing_the_trial_file_twice_adds_nothing(app: OutcomesApplication) -> None:
    import_csv(app, TRIAL, TRIAL_MAPPING)
    before = position(app)
    again = import_csv(app, TRIAL, TRIAL_MAPPING)
    assert (again.recorded, again.duplicates, again.episodes_opened) == (0, 780, 0)
    assert position(app) == before


@pytest.mark.parametrize(("label", "run"), [
    ("trial", lambda app, **o: import_csv(app, TRIAL, TRIAL_MAPPING, **o)),
    ("ahrq", lambda app, **o: import_fhir(app, AHRQ_STU3, **o)),
])
def test_dry_run_writes_nothing_and_reports_what_the_import_does(label: str, run: Any) -> None:
    dry_app, real_app = OutcomesApplication(clock=lambda: NOW), OutcomesApplication(clock=lambda: NOW)
    dry = run(dry_app, dry_run=True)
    assert position(dry_app) == 0 and dry.dry_run
    assert counts(dry) == counts(run(real_app))
    before = position(real_app)
    dry_again = run(real_app, dry_run=True)  # against what the ledger holds: all duplicates
    assert position(real_app) == before
    assert (dry_again.recorded, dry_again.episodes_opened) == (0, 0)
    assert dry_again.duplicates == dry.recorded


# ---- pseudonymisation ---------------------------------------------------------------------------

def test_no_source_patient_id_is_stored(app: OutcomesApplication) -> None:
    import_csv(app, TRIAL, TRIAL_MAPPING)
    import_csv(app, SYNTHEA, SYNTHEA_MAPPING, clinic="synthea", source="synthea")
    import_fhir(app, AHRQ_STU3)
    text = "\n".join(stored_state(n) for n in stored(app))
    # whole tokens, so that "1503" inside a digest or a UUID of the ledger's own is no match
    tokens = {t.lower() for t in re.findall(r"[\w-]+", text)}
    with SYNTHEA.open(newline="") as handle:
        synthea_ids = {row["PATIENT"].lower() for row in csv.DictReader(handle)}
    assert len(synthea_ids) == 27
    assert sorted(tokens & set(trial_trajectories())) == []
    assert sorted(tokens & synthea_ids) == []
    assert "test-" not in text.lower() and "patient/" not in text.lower()  # the AHRQ references
    assert Pseudonymiser(KEY)(TRIAL_SOURCE, "1503") in tokens  # the scan does read the events


def test_same_patient_same_ref_and_another_key_another_ref() -> None:
    pseudonymise = Pseudonymiser(KEY)
    ref = pseudonymise(TRIAL_SOURCE, "1503")
    assert re.fullmatch(r"pt-[0-9a-f]{32}", ref)
    assert pseudonymise(TRIAL_SOURCE, "1503") == Pseudonymiser(KEY)(TRIAL_SOURCE, "1503") == ref
    assert pseudonymise(TRIAL_SOURCE, "1507") != ref
    assert Pseudonymiser(b"another-key-0123456789")(TRIAL_SOURCE, "1503") != ref
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymiser(b"short")


def test_another_key_gives_every_patient_another_episode() -> None:
    apps = [OutcomesApplication(clock=lambda: NOW) for _ in range(2)]
    for app, key in zip(apps, (KEY, b"another-key-0123456789"), strict=True):
        import_csv(app, TRIAL, TRIAL_MAPPING, key=key)
    refs = [{e.patient_ref for e in stored_events(app) if isinstance(e, Episode.Opened)}
            for app in apps]
    assert len(refs[0]) == len(refs[1]) == 172
    assert refs[0].isdisjoint(refs[1])


# ---- Synthea observations.csv -------------------------------------------------------------------

def test_synthea_observations_by_instrument_column(app: OutcomesApplication) -> None:
    summary = import_csv(app, SYNTHEA, SYNTHEA_MAPPING, clinic="synthea", source="synthea")
    assert counts(summary) == {
        "files": 0, "unreadable": [], "resources_read": 990, "assessments_recorded": 26,
        "duplicates": 0, "voided": 0, "episodes_opened": 16,
        "skipped": {"not an instrument score": 964}, "flagged": {},
        "by_instrument": {"PHQ-9": 1, "PHQ-2": 15, "GAD-7": 8, "PHQ-A": 2}}
    events = stored_events(app)
    recorded = Counter(e.instrument for e in events if isinstance(e, Episode.AssessmentRecorded))
    assert recorded == {"PHQ-9": 1, "PHQ-2": 15, "GAD-7": 8, "PHQ-A": 2}
    assert {e.instrument for e in events if isinstance(e, Episode.Opened)} == {"PHQ-9"}


def test_synthea_phq_a_and_phq2_never_enter_the_phq9_fold(app: OutcomesApplication) -> None:
    import_csv(app, SYNTHEA, SYNTHEA_MAPPING, clinic="synthea", source="synthea")
    episodes = [e.originator_id for e in stored_events(app) if isinstance(e, Episode.Opened)]
    staged = {i: app.stage_history(i) for i in episodes}
    with_stages = {i: h for i, h in staged.items() if h}
    # only the patient with a PHQ-9 (3 points, the same day as a PHQ-2 of 5) has a decision
    ((only, history),) = with_stages.items()
    assert [(e["type"], e["date"]) for e in history] == [("BaselineBelowThreshold", "2023-10-26")]
    assert {i.instrument for i in app.get_episode(only).assessments.values()} == {"PHQ-9", "PHQ-2"}
    assert set(instruments_in([e["evidence"] for e in history])) == {"PHQ-9"}


def test_phq_a_and_phq2_rows_are_kept_apart_from_the_phq9_series(
        app: OutcomesApplication, tmp_path: Path) -> None:
    # Merged into the PHQ-9 series, 18 -> 8 -> 4 -> 3 -> 2 would be a response and a remission.
    summary = run_csv(app, tmp_path, """patient,date,code,total
        teen,2026-01-05,PHQ-9,18
        teen,2026-01-19,89204-2,8
        teen,2026-02-02,PHQ-A,4
        teen,2026-02-16,55758-7,3
        teen,2026-03-02,PHQ-2,2
        """, mapping=CsvMapping(patient="patient", date="date", instrument="code", total="total"))
    assert (summary.recorded, summary.episodes_opened) == (5, 1)
    episode = app.get_episode(episode_of("teen", source="test"))
    assert episode.instrument == "PHQ-9"
    assert sorted(a.instrument for a in episode.assessments.values()) == [
        "PHQ-2", "PHQ-2", "PHQ-9", "PHQ-A", "PHQ-A"]
    assert app.stage_history(episode.id) == []


# ---- FHIR through the pipeline ------------------------------------------------------------------

def test_ahrq_bundle_45_responses_18_episodes_mismatched_totals_flagged(
        app: OutcomesApplication) -> None:
    summary = import_fhir(app, AHRQ_STU3)
    # 19 Patients, 18 with responses: the 19th opens no episode
    assert counts(summary) == {
        "files": 0, "unreadable": [], "resources_read": 64, "assessments_recorded": 45,
        "duplicates": 0, "voided": 0, "episodes_opened": 18,
        "skipped": {NOT_ASSESSMENT: 19},
        "flagged": {"TOTAL_MISMATCH": 7, "TOTAL_ABOVE_MAX": 5, "ANSWER_CODE_MISMATCH": 44,
                    "SAFETY_ITEM9_POSITIVE": 25},
        "by_instrument": {"PHQ-9": 45}}
    recorded = [e for e in stored_events(app) if isinstance(e, Episode.AssessmentRecorded)]
    mismatched = [e for e in recorded if "TOTAL_MISMATCH" in e.flags]
    assert sorted(e.reported_total for e in mismatched) == [12, 13, 34, 35, 35, 36, 36]
    assert all(e.reported_total != sum(v for v in e.items[:9] if v is not None)
               for e in mismatched)
    assert all(e.reported_total is None or "TOTAL_MISMATCH" in e.flags
               or e.reported_total == sum(v for v in e.items[:9] if v is not None)
               for e in recorded)
    assert import_fhir(app, AHRQ_STU3).duplicates == 45


def test_us_core_item_and_total_observations_are_one_assessment(app: OutcomesApplication) -> None:
    summary = import_fhir(app, US_CORE)
    assert (summary.recorded, summary.episodes_opened, summary.resources_read) == (1, 1, 14)
    assert summary.skipped == {DERIVED: 12, NOT_ASSESSMENT: 1}
    (recorded,) = [e for e in stored_events(app) if isinstance(e, Episode.AssessmentRecorded)]
    assert (recorded.instrument, recorded.items, recorded.reported_total, recorded.total) == (
        "PHQ-9", [2, 2, 2, 2, 1, 1, 2, 0, 0, 1], 12, "12")
    assert recorded.flags == []


@pytest.mark.parametrize(("path", "skipped"), [
    (AHRQ_DSTU2, {NOT_ASSESSMENT: 50}),  # DSTU2: Patients, Conditions, AllergyIntolerances only
    (LHC, {NOT_ASSESSMENT: 1}),  # a Questionnaire
])
def test_fhir_files_without_assessments_record_nothing(
        app: OutcomesApplication, path: Path, skipped: dict[str, int]) -> None:
    summary = import_fhir(app, path)
    assert (summary.recorded, summary.episodes_opened, dict(summary.skipped)) == (0, 0, skipped)
    assert position(app) == 0


def test_entered_in_error_voids_the_earlier_import(app: OutcomesApplication) -> None:
    assert import_fhir(app, DATA / "void-before.json").recorded == 1
    summary = import_fhir(app, DATA / "statuses.json")
    assert (summary.voided, summary.recorded) == (1, 1)  # F-9 voided; the amended GAD-7 recorded
    assert summary.skipped == {NOT_IMPORTED: 1,  # the cancelled Observation
                               "not final (in-progress)": 1, "not final (preliminary)": 1}
    episode = app.get_episode(episode_of("Patient/p1", source="fhir", clinic="fhir-clinic"))
    phq9 = [a for a in episode.assessments.values() if a.instrument == "PHQ-9"]
    assert [(a.reported_total, a.voided) for a in phq9] == [(12, True)]
    again = import_fhir(app, DATA / "statuses.json")
    assert (again.voided, again.recorded, again.duplicates) == (0, 0, 2)


def test_entered_in_error_never_imported_is_skipped_with_its_reason(
        app: OutcomesApplication) -> None:
    summary = import_fhir(app, DATA / "statuses.json")
    assert (summary.voided, summary.recorded) == (0, 1)
    assert summary.skipped[NOT_IMPORTED] == 2


# ---- CSV rules, one small input each -----------------------------------------------------------

PLAIN = CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9", total="total")


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.csv"
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
    return path


def run_csv(app: OutcomesApplication, tmp_path: Path, text: str, mapping: CsvMapping = PLAIN,
            **options: Any) -> ImportSummary:
    return import_csv(app, write_csv(tmp_path, text), mapping, source="test", **options)


def totals(app: OutcomesApplication, patient: str = "p1") -> list[tuple[date, int | None]]:
    episode = app.get_episode(episode_of(patient, source="test"))
    return sorted((a.administered_on, a.reported_total) for a in episode.assessments.values())


def test_totals_are_whole_numbers_21_0_is_read_21_5_is_skipped(
        app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,date,total
        p1,2026-01-05,21.0
        p1,2026-01-12,21.5
        p1,2026-01-19,21
        """)
    assert (summary.recorded, dict(summary.skipped)) == (2, {NOT_WHOLE: 1})
    assert totals(app) == [(date(2026, 1, 5), 21), (date(2026, 1, 19), 21)]


def test_empty_or_na_score_is_skipped(app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,date,total
        p1,2026-01-05,18
        p1,2026-01-12,
        p1,2026-01-19,NA
        p1,2026-01-26
        """)  # the last row is short: its missing cells are empty
    assert (summary.recorded, dict(summary.skipped)) == (1, {"no score": 3})


def test_unknown_instrument_code_is_skipped(app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,date,code,total
        p1,2026-01-05,44261-6,18
        p1,2026-01-05,72514-3,4
        p1,2026-01-12,PHQ-9,16
        p1,2026-01-19,,5
        """, mapping=CsvMapping(patient="patient", date="date", instrument="code", total="total"))
    assert (summary.recorded, dict(summary.skipped)) == (2, {"not an instrument score": 2})
    assert totals(app) == [(date(2026, 1, 5), 18), (date(2026, 1, 12), 16)]


def test_mapping_naming_a_missing_column_makes_the_file_unreadable(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "patient,date,score\np1,2026-01-05,18")
    with pytest.raises(UnreadableFileError) as caught:
        list(read_csv(path, PLAIN))
    assert caught.value.reason == "no column total in the header"


def test_contradictory_options_are_rejected_before_any_file_is_read() -> None:
    with pytest.raises(ValueError, match="--baseline needs --anchor"):
        CsvMapping(patient="p", date="d", fixed_instrument="PHQ-9", total="t",
                   baseline="b").validate()
    with pytest.raises(ValueError, match="exactly one of --date or --day"):
        CsvMapping(patient="p", fixed_instrument="PHQ-9", total="t").validate()


def test_day_offsets_count_from_the_anchor(app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,day,total
        p1,0,18
        p1,14.0,12
        p1,,9
        """, mapping=CsvMapping(patient="patient", day="day", anchor=date(2026, 1, 5),
                                fixed_instrument="PHQ-9", total="total"))
    assert (summary.recorded, dict(summary.skipped)) == (2, {"no date": 1})
    assert totals(app) == [(date(2026, 1, 5), 18), (date(2026, 1, 19), 12)]


BASELINE = CsvMapping(patient="patient", day="day", anchor=date(2026, 1, 5),
                      fixed_instrument="HAM-D17", total="total", baseline="base")


def test_baseline_column_is_recorded_once_per_patient_at_the_anchor(
        app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,day,base,total
        p1,7,24,20
        p1,14,24,15
        p2,7,19,18
        p2,14,19,17
        p2,28,19,12
        """, mapping=BASELINE)
    assert (summary.resources_read, summary.recorded, summary.episodes_opened) == (7, 7, 2)
    assert totals(app, "p1") == [(date(2026, 1, 5), 24), (date(2026, 1, 12), 20),
                                 (date(2026, 1, 19), 15)]
    assert totals(app, "p2")[0] == (date(2026, 1, 5), 19)


def test_unreadable_baseline_is_skipped_and_the_row_still_counts(
        app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,day,base,total
        p1,7,24.5,20
        p1,14,24.5,15
        """, mapping=BASELINE)
    assert (summary.recorded, dict(summary.skipped)) == (2, {NOT_WHOLE: 1})
    assert totals(app) == [(date(2026, 1, 12), 20), (date(2026, 1, 19), 15)]


def test_key_column_is_the_business_key(app: OutcomesApplication, tmp_path: Path) -> None:
    text = """id,patient,date,total
        r1,p1,2026-01-05,18
        r2,p1,2026-01-05,16
        """
    keyed = CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9", total="total",
                       key="id")
    assert run_csv(app, tmp_path, text, mapping=keyed).recorded == 2  # two forms that day
    # without it the key is patient+date+instrument: the second row contradicts the first
    other = OutcomesApplication(clock=lambda: NOW)
    summary = run_csv(other, tmp_path, text)
    assert (summary.recorded, dict(summary.skipped)) == (1, {"invalid: idempotency-conflict": 1})
    reordered = "id,patient,date,total\nr2,p1,2026-01-05,16\nr1,p1,2026-01-05,18\n"
    again = run_csv(app, tmp_path, reordered, mapping=keyed)
    assert (again.recorded, again.duplicates) == (0, 2)


def test_patient_whose_episode_cannot_open_is_skipped_and_the_others_import(
        app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, """patient,date,total
        p1,2099-01-05,18
        p1,2099-01-12,17
        p2,2026-01-05,15
        """)
    assert (summary.recorded, summary.episodes_opened) == (1, 1)
    assert summary.skipped == {"invalid: future-date": 2}


def test_no_patient_is_skipped(app: OutcomesApplication, tmp_path: Path) -> None:
    summary = run_csv(app, tmp_path, "patient,date,total\n,2026-01-05,18\n")
    assert (summary.recorded, dict(summary.skipped)) == (0, {"no patient": 1})


def test_bytes_that_are_not_utf8_past_the_header_make_the_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    rows = "".join(f"p{n},2026-01-05,{n % 20}\n" for n in range(1000))  # past the first 8 KiB
    path.write_bytes(f"patient,date,total\n{rows}".encode() + "p-é,2026-01-05,3\n".encode("latin-1"))
    with pytest.raises(UnreadableFileError, match="codec can't decode"):
        list(read_csv(path, PLAIN))
