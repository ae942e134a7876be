"""The batched import (ADR 0026): one transaction per batch of patients stores exactly the events
of one transaction per assessment (every row: position, originator id, version, topic, state, for
the same clock) and gives the same summary; an import interrupted between batches, or inside
one, resumes without duplicates and ends with the events of an uninterrupted one; a batch that
loses a race with another writer is run again on fresh state, and no event is lost.

Each test runs on the in-memory store (SQLite where two writers share a store) and PostgreSQL.
"""

from __future__ import annotations

from base64 import b64encode
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import eventsourcing.domain
import pytest

from application.batch import EpisodePlan, RecordStep
from application.outcomes import OutcomesApplication
from bootstrap import Settings, init_store
from domain.episode import Episode
from domain.errors import EpisodeClosedError, InvalidInputError
from importers.fhir import read_fhir
from importers.pipeline import Importer, ImportSummary, Pseudonymiser, episode_id
from importers.records import SourceAssessment
from importers.tabular import CsvMapping, read_csv
from trust.cipher import KeyedMapper, key_id_of

NOW = datetime(2027, 12, 31, tzinfo=UTC)
RECORDED = datetime(2027, 12, 30, 9, 0, tzinfo=UTC)  # every event's library timestamp
KEY = b"batched-import-key-0123456789"
REAL = Path(__file__).parents[1] / "data"
DATA = Path(__file__).parent / "data"
TRIAL = REAL / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
AHRQ = REAL / "smart-ahrq-depression" / "stu3-ahrq-depression-patient-phq9.json"
PLAIN = CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9", total="total",
                   key="id")
ERRORS = """id,patient,date,total
    a1,p1,2026-01-05,18
    a2,p1,2026-01-12,99
    a3,p1,2026-01-19,12
    a3,p1,2026-01-19,13
    b1,p2,2099-01-05,15
    b2,p2,2099-01-12,14
    c1,p3,2026-01-05,21
    c2,p3,2099-02-01,20
    c3,p3,2026-01-26,9
    """  # out of range, same key other content, a patient who cannot open, a future date

Reader = Callable[[Path], Iterator[Any]]


@pytest.fixture(autouse=True)
def _fixed_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same clock for both imports: the library stamps every event with RECORDED."""
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", lambda: RECORDED)


@pytest.fixture
def stores(store: str, request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[Callable[..., OutcomesApplication]]:
    """Two empty stores of the kind ``store``: each call gives an application on the next."""
    if store == "postgres":
        places = [request.getfixturevalue(name).settings_fields()
                  for name in ("postgres_ledger", "fresh_schema")]
    else:
        places = [{"store": store, "sqlite_path": tmp_path / f"{n}" / "outcomes.sqlite"}
                  for n in range(2)]
    apps: list[OutcomesApplication] = []

    def new(**overrides: Any) -> OutcomesApplication:
        settings = Settings(**places[len(apps)], **overrides)
        if settings.store == "sqlite":
            settings.sqlite_path.parent.mkdir()
        if settings.store == "postgres" and settings.cipher_key:
            init_store(settings)  # the key tables (outcomes db init)
        apps.append(OutcomesApplication(settings.eventsourcing_env(create_table=True),
                                        clock=lambda: NOW))
        return apps[-1]
    yield new
    for app in apps:
        app.close()


def importer(app: OutcomesApplication, source: str, **options: Any) -> Importer:
    return Importer(app, clinic_id="clinic", criteria="frank1991", source=source,
                    pseudonymise=Pseudonymiser(KEY), **options)


def run(app: OutcomesApplication, records: list[Any], source: str = "test",
        **options: Any) -> ImportSummary:
    return importer(app, source, **options).run(records)


def rows(app: OutcomesApplication) -> list[tuple[int, str, int, str, bytes]]:
    """Every stored event row as stored: position, originator id, version, topic, state."""
    return [(n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
            for n in app.recorder.select_notifications(start=1, limit=1_000_000)]


def trial() -> list[Any]:
    return list(read_csv(TRIAL, TRIAL_MAPPING))


def ahrq() -> list[Any]:
    return list(read_fhir([AHRQ], source="fhir"))


def errors(tmp_path: Path) -> list[Any]:
    path = tmp_path / "errors.csv"
    path.write_text("\n".join(line.strip() for line in ERRORS.strip().splitlines()) + "\n")
    return list(read_csv(path, PLAIN))


def test_the_errors_file_skips_what_it_says(tmp_path: Path) -> None:
    """The fixture data mean what the tests say: errors.csv skips what it claims."""
    summary = run(OutcomesApplication(clock=lambda: NOW), errors(tmp_path))
    assert summary.skipped == {"invalid: total-out-of-range": 1, "invalid: idempotency-conflict": 1,
                               "invalid: future-date": 3}
    assert (summary.recorded, summary.episodes_opened) == (4, 2)


@pytest.mark.parametrize("batch_size", [1, 7, 500])
@pytest.mark.parametrize("name", ["trial", "ahrq", "errors"])
def test_batched_import_stores_the_rows_and_summary_of_one_transaction_per_assessment(
        stores: Callable[..., OutcomesApplication], name: str, batch_size: int,
        tmp_path: Path) -> None:
    records = {"trial": trial, "ahrq": ahrq, "errors": lambda: errors(tmp_path)}[name]()
    old_app, new_app = stores(), stores()
    dry = run(new_app, records, batch_size=batch_size, dry_run=True)
    old = run(old_app, records, batch_size=0)
    new = run(new_app, records, batch_size=batch_size)
    assert rows(new_app) == rows(old_app)
    assert len(rows(new_app)) > new.recorded > 0
    assert new.as_dict(skipped_records=True) == old.as_dict(skipped_records=True)
    assert dry.as_dict(skipped_records=True) == {**old.as_dict(skipped_records=True),
                                                 "dry_run": True}
    again_old = run(old_app, records, batch_size=0)
    again_new = run(new_app, records, batch_size=batch_size)
    assert again_new.as_dict(skipped_records=True) == again_old.as_dict(skipped_records=True)
    assert again_new.recorded == 0 and rows(new_app) == rows(old_app)


def test_entered_in_error_voids_the_same_way_batched(
        stores: Callable[..., OutcomesApplication]) -> None:
    old_app, new_app = stores(), stores()
    for path in (DATA / "void-before.json", DATA / "statuses.json", DATA / "statuses.json"):
        records = list(read_fhir([path], source="fhir"))
        old = run(old_app, records, source="fhir", batch_size=0)
        new = run(new_app, records, source="fhir", batch_size=3)
        assert new.as_dict(skipped_records=True) == old.as_dict(skipped_records=True)
    assert (old.voided, old.duplicates) == (0, 2)  # the last run: voided before, all repeats
    assert rows(new_app) == rows(old_app)


def test_a_void_that_fails_still_stops_the_import_after_storing_what_came_before(
        stores: Callable[..., OutcomesApplication]) -> None:
    """A void on a closed episode raises, as it did with one transaction per assessment."""
    old_app, new_app = stores(), stores()
    for app, size in ((old_app, 0), (new_app, 3)):
        run(app, list(read_fhir([DATA / "void-before.json"], source="fhir")), source="fhir",
            batch_size=size)
        [ident] = {UUID(row[1]) for row in rows(app)}
        app.close_episode(ident, discharged_on=date(2027, 1, 1), recorded_by="clinician")
        with pytest.raises(EpisodeClosedError):
            run(app, list(read_fhir([DATA / "statuses.json"], source="fhir")), source="fhir",
                batch_size=size)
    assert rows(new_app) == rows(old_app)


def test_encrypted_batched_import_stores_the_same_events_each_under_its_patients_key(
        stores: Callable[..., OutcomesApplication]) -> None:
    """With per-patient keys (ADR 0023) the ciphertexts differ (random nonces), everything
    else is the same: every row's envelope, its decrypted event, and its patient's key."""
    master = b64encode(bytes(range(32))).decode()
    old_app, new_app = stores(cipher_key=master), stores(cipher_key=master)
    records = trial()[:120]
    old, new = run(old_app, records, batch_size=0), run(new_app, records, batch_size=50)
    assert new.as_dict(skipped_records=True) == old.as_dict(skipped_records=True)
    assert isinstance(new_app.mapper, KeyedMapper) and isinstance(old_app.mapper, KeyedMapper)
    keys = new_app.mapper.keys
    notifications = list(new_app.recorder.select_notifications(start=1, limit=10_000))
    assert [row[:4] for row in rows(new_app)] == [row[:4] for row in rows(old_app)]
    assert [new_app.mapper.to_domain_event(n) for n in notifications] == [
        old_app.mapper.to_domain_event(n)
        for n in old_app.recorder.select_notifications(start=1, limit=10_000)]
    assert all(key_id_of(n.state) == keys.key_for_episode(str(n.originator_id))
               for n in notifications)
    assert len({key_id_of(n.state) for n in notifications}) == new.episodes_opened > 1


def first_batches(records: list[Any], batches: int, size: int) -> int:
    """How many patients the first ``batches`` batches of ``size`` records hold (ADR 0026)."""
    counts = list(Counter(r.patient for r in records if isinstance(r, SourceAssessment)).values())
    patients = held = 0
    for _ in range(batches):
        held = 0
        while held < size:
            held += counts[patients]
            patients += 1
    return patients


@contextmanager
def failing_after(app: OutcomesApplication, batches: int, *,
                  inside: bool) -> Iterator[list[int]]:
    """Batches after the first ``batches`` raise: before they run (between batches) or, with
    ``inside``, in the recorder's write transaction, once the batch's events and links are
    inserted (SQLite and PostgreSQL: ``_write_links``), by a statement the database refuses.
    (A Python exception there would not do: the library's PostgreSQL recorder commits before
    it re-raises one.)"""
    calls: list[int] = []
    record_batch, write_links = app.record_batch, app.recorder._write_links

    def failing_batch(plans: list[EpisodePlan]) -> Any:
        calls.append(len(plans))
        if len(calls) > batches and not inside:
            raise RuntimeError("interrupted between batches")
        return record_batch(plans)

    def failing_links(cursor: Any, links: Any) -> None:
        write_links(cursor, links)
        if len(calls) > batches:
            cursor.execute("SELECT * FROM interrupted_no_such_table")
            cursor.fetchall()
    app.record_batch = failing_batch  # type: ignore[method-assign]
    app.recorder._write_links = failing_links
    try:
        yield calls
    finally:
        del app.record_batch
        del app.recorder._write_links


@pytest.mark.file_store
@pytest.mark.parametrize("inside", [False, True], ids=["between", "inside"])
def test_interrupted_import_resumes_without_duplicates_and_ends_with_the_same_events(
        stores: Callable[..., OutcomesApplication], inside: bool) -> None:
    records = trial()
    whole_app, cut_app = stores(), stores()
    whole = run(whole_app, records, batch_size=40)
    with failing_after(cut_app, 3, inside=inside), pytest.raises(Exception, match="interr"):
        run(cut_app, records, batch_size=40)
    stored = {row[1] for row in rows(cut_app)}  # the episodes of the three stored batches, whole
    patients = list(dict.fromkeys(r.patient for r in records if isinstance(r, SourceAssessment)))
    per_episode = {str(episode_id("clinic", Pseudonymiser(KEY)("test", p))): p for p in patients}
    done = [p for e, p in per_episode.items() if e in stored]
    assert done == patients[:first_batches(records, 3, 40)]  # 3 batches whole, not the 4th
    assert rows(cut_app) == rows(whole_app)[:len(rows(cut_app))]
    resumed = run(cut_app, records, batch_size=40)
    if inside:  # a rolled-back append may leave a gap in PostgreSQL's positions (ADR 0022)
        assert [row[1:] for row in rows(cut_app)] == [row[1:] for row in rows(whole_app)]
    else:
        assert rows(cut_app) == rows(whole_app)
    assert resumed.recorded + resumed.duplicates == whole.recorded
    assert resumed.episodes_opened == whole.episodes_opened - len(done)
    assert resumed.duplicates == sum(1 for r in records if getattr(r, "patient", None) in done)


def test_a_batch_with_a_failed_step_stores_the_others_and_reports_the_error(
        stores: Callable[..., OutcomesApplication]) -> None:
    app = stores()
    ident = episode_id("clinic", "pt-batch")
    opening = {"patient_ref": "pt-batch", "clinic_id": "clinic", "criteria": "frank1991",
               "instrument": "PHQ-9", "opened_on": date(2026, 1, 5), "recorded_by": "test"}
    steps = [RecordStep("s1", "PHQ-9", date(2026, 1, 5), "test", total=20),
             RecordStep("s2", "PHQ-9", date(2026, 1, 12), "test", total=40),
             "a note", RecordStep("s3", "PHQ-9", date(2026, 1, 19), "test", total=8)]
    [outcome] = app.record_batch([EpisodePlan(ident, opening, lambda episode: steps)])
    first, failed, note, last = outcome.results
    assert outcome.opened and outcome.error is None and note == "a note"
    assert isinstance(failed, InvalidInputError)
    assert [a.assessment_id for a in app.assessments(ident)] == ["s1", "s3"]
    events = rows(app)
    assert (first.position, last.position) == (events[1][0], events[-1][0])
    assert last.version == len(events) and last.stage_events  # s3: 60 % down from 20: response
    assert [e.originator_version for e in app.episode_events(ident)] == list(
        range(1, len(events) + 1))
    with pytest.raises(ValueError, match="twice"):
        app.record_batch([EpisodePlan(ident, opening, lambda e: []),
                          EpisodePlan(ident, opening, lambda e: [])])


@pytest.mark.file_store
def test_a_batch_that_loses_a_race_runs_again_and_no_event_is_lost(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Another process appends to one of the batch's episodes between the batch's reads and its
    save: the save loses (IntegrityError), the batch runs again on fresh state."""
    fields = (request.getfixturevalue("postgres_ledger").settings_fields()
              if store == "postgres" else {"store": store, "sqlite_path": tmp_path / "o.sqlite"})
    env = Settings(**fields).eventsourcing_env(create_table=True)
    app, other = OutcomesApplication(env, clock=lambda: NOW), OutcomesApplication(
        env, clock=lambda: NOW)
    try:
        records = trial()
        first = [r for r in records if getattr(r, "patient", None) in {"1503", "1507"}]
        assert run(app, [r for r in first if r.administered == date(2004, 1, 5)]).recorded == 2
        target = episode_id("clinic", Pseudonymiser(KEY)("test", "1503"))
        save, raced = app.save, []

        def racing_save(*aggregates: Any, **kwargs: Any) -> Any:
            if not raced:  # the other writer wins the race once
                raced.append(other.record_assessment(
                    target, instrument="PHQ-9", administered=date(2004, 1, 6), total=11,
                    recorded_by="clinician", assessment_id="other-writer"))
            return save(*aggregates, **kwargs)
        app.save = racing_save  # type: ignore[method-assign]
        summary = run(app, first)
        del app.save
        assert raced and summary.recorded == len(first) - 2 and summary.duplicates == 2
        stored = {a.assessment_id for a in app.assessments(target)}
        assert "other-writer" in stored and len(stored) == 1 + sum(
            1 for r in first if r.patient == "1503")
        events = app.episode_events(target)
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        assert sum(isinstance(e, Episode.AssessmentRecorded) for e in events) == len(stored)
    finally:
        app.close()
        other.close()


def test_batch_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        importer(OutcomesApplication(clock=lambda: NOW), "test", batch_size=-1)
