"""From source records to the ledger: pseudonymise, open episodes, record through the application.

Every assessment goes through the command of ``OutcomesApplication.record_assessment`` (its
validation, scoring and idempotency), patients in batches of about ``batch_size`` records, each
batch one ``record_batch``: one transaction (ADR 0026). ``batch_size=0`` keeps one transaction
per assessment (``record_assessment`` itself), the reference the batched import is tested
against: the same stored events and the same summary. Ids are derived from keys, so importing
the same file twice adds nothing, and an interrupted import run again resumes where it stopped:
- ``patient_ref`` = HMAC-SHA256(key, source system + source patient reference): the ledger never
  holds the source identifier, and the same source patient always maps to the same reference;
- the episode id = UUID5(clinic, patient_ref): one episode per patient and clinic, opened at
  the patient's first assessment;
- the assessment id = "imp-" + HMAC(key, business key): a repeated key with the same content is a
  no-op (a keyed hash, since a CSV key may contain the source patient id).

A dry run runs the very same commands on a scratch in-memory copy of what it touches (the
episodes of the patients read, the custom criteria set named), so its summary is, line for
line, what the real import would record; the ledger is only read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from application.batch import EpisodePlan, PlanOutcome, RecordStep, VoidStep
from application.outcomes import CommandResult, OutcomesApplication
from domain.criteria.builtin import BUILTIN, split_criteria_id
from domain.criteria.custom import CustomCriteria
from domain.criteria.fold import staged_instrument
from domain.episode import Episode
from domain.errors import DomainError
from domain.signals.clinic import ClinicSignals
from importers.records import Skipped, SourceAssessment

DEFAULT_BATCH_SIZE = 500  # records per transaction (whole patients; ADR 0026)
DUPLICATE = "duplicate"  # notes of a batch step: counted, nothing to run
NOT_IMPORTED = "entered in error (not imported before)"
VOID_REASON = "entered in error at the source"
NAMESPACE = UUID("6f1d3c1e-2b0a-5d8e-9a57-0c4a1b7e9d21")  # Outcome Ledger imports
Progress = Callable[[int, int], None]  # (records done, records in all)


@dataclass
class ImportSummary:
    """What an import did: counts by outcome, skips by reason, flags by kind (no patient data).

    ``skipped_records``: each record not imported, as ``{"location", "reason"}``; the location
    is the CSV file and row number (``scores.csv:4``) or the FHIR file and resource
    (``bundle.json#QuestionnaireResponse/qr-1``), never a patient identifier."""

    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    resources_read: int = 0
    recorded: int = 0
    duplicates: int = 0
    voided: int = 0
    episodes_opened: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_records: list[dict[str, str]] = field(default_factory=list)
    flagged: Counter[str] = field(default_factory=Counter)
    by_instrument: Counter[str] = field(default_factory=Counter)  # assessments recorded
    dry_run: bool = False
    episodes_closed: int | None = None  # None: the import was not asked to close episodes

    def skip(self, location: str, reason: str) -> None:
        """Count one record not imported, for ``reason``, and say where it is."""
        self.skipped[reason] += 1
        self.skipped_records.append({"location": location, "reason": reason})

    @property
    def exit_code(self) -> int:
        """0 when everything read was imported or deliberately skipped, 1 on an unreadable file."""
        return 1 if self.unreadable else 0

    def as_dict(self, *, skipped_records: bool = False) -> dict[str, Any]:
        """The counts as JSON data; with ``skipped_records``, also where each skip is."""
        data = {"dry_run": self.dry_run, "files": self.files, "unreadable": self.unreadable,
                "resources_read": self.resources_read, "assessments_recorded": self.recorded,
                "duplicates": self.duplicates, "voided": self.voided,
                "episodes_opened": self.episodes_opened, "skipped": dict(self.skipped),
                "flagged": dict(self.flagged), "by_instrument": dict(self.by_instrument)}
        if self.episodes_closed is not None:
            data["episodes_closed"] = self.episodes_closed
        if skipped_records:
            data["skipped_records"] = list(self.skipped_records)
        return data


class Pseudonymiser:
    """``patient_ref`` from a source patient reference: "pt-" + 32 hex digits of
    HMAC-SHA256(key, "<source>|<reference>"). Raises ValueError for a key under 16 bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must have at least 16 bytes")
        self._key = key

    def __call__(self, source: str, patient: str) -> str:
        return "pt-" + self.digest(f"{source}|{patient}")[:32]

    def digest(self, text: str) -> str:
        """HMAC-SHA256 of ``text`` (hex): for anything that may name a patient."""
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def episode_id(clinic_id: str, patient_ref: str) -> UUID:
    return uuid5(NAMESPACE, f"episode|{clinic_id}|{patient_ref}")


def _clinical_date(record: SourceAssessment) -> date:
    moment = record.administered
    return moment.date() if isinstance(moment, datetime) else moment


def _order(record: SourceAssessment) -> tuple[date, str, str]:
    recorded = record.recorded_at.isoformat() if record.recorded_at else ""
    return (_clinical_date(record), recorded, record.key)


class Importer:
    """Imports records for one clinic under one criteria set (``criteria`` id, variants allowed).

    ``run(records)`` returns an ImportSummary; with ``dry_run`` nothing is written to ``app``:
    the commands run on a scratch in-memory store seeded with copies of the stored events they
    need, so the summary is the one the real import would give. ``batch_size``: records per
    transaction (whole patients: a patient with more is a batch alone; 0: one transaction per
    assessment). Raises UnknownCriteriaError or InvalidCriteriaParameterError for ``criteria``,
    ValueError for a negative ``batch_size``. ``close_at_last_visit``: after the records, each
    imported patient's open episode is discharged on the clinical date of its last valid
    assessment (a trial file's last visit; ADR 0033), so its outcome at discharge can be judged.
    """

    def __init__(self, app: OutcomesApplication, *, clinic_id: str, criteria: str,
                 pseudonymise: Pseudonymiser, source: str, recorded_by: str = "import",
                 dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 close_at_last_visit: bool = False) -> None:
        self.close_at_last_visit = close_at_last_visit
        if batch_size < 0:
            raise ValueError("batch_size: 0 (one transaction per assessment) or more records")
        self.batch_size = batch_size
        self.ledger, self.clinic_id, self.source = app, clinic_id, source
        self.criteria = app.criteria_set(criteria)  # built-in, custom or a variant
        self.pseudonymise, self.recorded_by, self.dry_run = pseudonymise, recorded_by, dry_run
        # where the commands run: the ledger, or for a dry run a scratch store (never os.environ)
        self.app = OutcomesApplication({}, clock=app.clock) if dry_run else app
        self._copy(ClinicSignals.id_for(clinic_id))  # the clinic's choice of rule packs, if any
        base_id = split_criteria_id(criteria)[0]
        if base_id not in BUILTIN:
            self._copy(CustomCriteria.id_for(base_id))

    def _copy(self, ident: UUID) -> None:
        """Dry run: give the scratch store the ledger's events of aggregate ``ident``."""
        if self.app is not self.ledger and ident not in self.app.repository \
                and ident in self.ledger.repository:
            self.app.events.put(list(self.ledger.events.get(ident)))

    def run(self, records: Iterable[SourceAssessment | Skipped],
            summary: ImportSummary | None = None, progress: Progress | None = None) -> ImportSummary:
        """Import ``records`` patient by patient, each patient's in clinical-date order; counts
        go to ``summary`` (a new one by default), ``progress(done, total)`` after each record
        (batched: once its batch is stored). A patient whose episode cannot be opened is
        skipped with the error's code. An exception between batches leaves the batches before
        it stored, whole: running the import again records the rest (the stored ones are
        duplicates) and ends with the events an uninterrupted import stores."""
        summary = summary or ImportSummary()
        summary.dry_run = self.dry_run
        by_patient: dict[str, list[SourceAssessment]] = defaultdict(list)
        for record in records:
            summary.resources_read += 1
            if isinstance(record, Skipped):
                summary.skip(record.location, record.reason)
            else:
                by_patient[record.patient].append(record)
        for patient_records in by_patient.values():
            patient_records.sort(key=_order)
        if self.batch_size:
            self._batched(by_patient, summary, progress)
        else:
            self._per_assessment(by_patient, summary, progress)
        if self.close_at_last_visit:
            summary.episodes_closed = sum(self._close(patient, summary) for patient in by_patient)
        return summary

    def _close(self, patient: str, summary: ImportSummary) -> bool:
        """Discharge the patient's episode on its last valid assessment's clinical date;
        False when it has no such assessment, is closed already (a repeated import) or is not
        stored. A discharge the episode refuses is counted as a skip with the error's code."""
        ident = episode_id(self.clinic_id, self.pseudonymise(self.source, patient))
        if ident not in self.app.repository:
            return False
        episode = self.app.get_episode(ident)
        valid = episode.valid_assessments()
        if episode.is_closed or not valid:
            return False
        try:
            self.app.close_episode(ident, discharged_on=max(a.administered_on for a in valid),
                                   recorded_by=self.recorded_by)
        except DomainError as exc:
            summary.skipped[f"not closed: {exc.code}"] += 1
            return False
        return True

    # -- one transaction per batch of patients (ADR 0026) ----------------------------------

    def _batched(self, by_patient: dict[str, list[SourceAssessment]], summary: ImportSummary,
                 progress: Progress | None) -> None:
        """Patients in order, whole, in batches of at least ``batch_size`` records (a patient
        with more is a batch alone): each batch one ``record_batch``, one transaction; its
        counts go to ``summary`` once it is stored."""
        total, done, held = sum(len(v) for v in by_patient.values()), 0, 0
        batch: list[list[SourceAssessment]] = []
        plans: list[EpisodePlan] = []
        for n, (patient, records) in enumerate(by_patient.items(), 1):
            batch.append(records)
            plans.append(self._plan(patient, records))
            held += len(records)
            if held >= self.batch_size or n == len(by_patient):
                outcomes = self.app.record_batch(plans)
                for stored, outcome in zip(batch, outcomes, strict=True):
                    done = self._tally(stored, outcome, summary, done, total, progress)
                batch, plans, held = [], [], 0

    def _plan(self, patient: str, records: list[SourceAssessment]) -> EpisodePlan:
        ref = self.pseudonymise(self.source, patient)
        ident = episode_id(self.clinic_id, ref)
        self._copy(ident)
        opening = {"patient_ref": ref, "clinic_id": self.clinic_id, "criteria": self.criteria.id,
                   "instrument": self._staged(records), "opened_on": _clinical_date(records[0]),
                   "recorded_by": self.recorded_by}
        return EpisodePlan(ident, opening, lambda episode: [self._step(episode, r)
                                                            for r in records])

    def _step(self, episode: Episode, record: SourceAssessment) -> RecordStep | VoidStep | str:
        """The command for ``record`` on ``episode`` as it was before the patient's records
        (as ``_one`` decides), or the note DUPLICATE / NOT_IMPORTED."""
        digest = self.pseudonymise.digest(f"{self.source}|{record.key}")
        ident = "imp-" + digest[:32]
        if record.voided:
            known = episode.assessments.get(ident)
            if known is not None and known.voided:
                return DUPLICATE
            if known is None:
                return NOT_IMPORTED
            return VoidStep(ident, reason=VOID_REASON, recorded_by=self.recorded_by, fatal=True)
        return RecordStep(ident, record.instrument, record.administered, self.recorded_by,
                          record.items, record.total, self._source(record, digest))

    def _tally(self, records: list[SourceAssessment], outcome: PlanOutcome,
               summary: ImportSummary, done: int, total: int, progress: Progress | None) -> int:
        """Count one stored patient's outcome as ``_per_assessment`` does; returns ``done``."""
        if outcome.error is not None:
            for record in records:
                summary.skip(record.location, f"invalid: {outcome.error.code}")
            return done + len(records)
        summary.episodes_opened += outcome.opened
        for record, result in zip(records, outcome.results, strict=True):
            if result is DUPLICATE:
                summary.duplicates += 1
            elif result is NOT_IMPORTED:
                summary.skip(record.location, NOT_IMPORTED)
            elif isinstance(result, DomainError):
                summary.skip(record.location, f"invalid: {result.code}")
            elif record.voided:
                summary.voided += 1
            else:
                self._count(record, result, summary)
            done += 1
            if progress:
                progress(done, total)
        return done

    def _count(self, record: SourceAssessment, outcome: CommandResult,
               summary: ImportSummary) -> None:
        """Count one record_assessment outcome: a duplicate, or recorded with its flags."""
        if outcome.replayed:
            summary.duplicates += 1
        else:
            summary.recorded += 1
            summary.by_instrument[record.instrument] += 1
            summary.flagged.update(outcome.assessment.flags if outcome.assessment else ())

    # -- one transaction per assessment (batch_size 0: the reference the tests compare with) --

    def _per_assessment(self, by_patient: dict[str, list[SourceAssessment]],
                        summary: ImportSummary, progress: Progress | None) -> None:
        total, done = sum(len(v) for v in by_patient.values()), 0
        for patient, patient_records in by_patient.items():
            try:
                episode = self._episode(patient, patient_records, summary)
            except DomainError as exc:  # e.g. a first date in the future: skip this patient only
                for record in patient_records:
                    summary.skip(record.location, f"invalid: {exc.code}")
                done += len(patient_records)
                continue
            for record in patient_records:
                self._one(episode, record, summary)
                done += 1
                if progress:
                    progress(done, total)

    def _episode(self, patient: str, records: list[SourceAssessment],
                 summary: ImportSummary) -> Episode:
        """The patient's episode at this clinic, opened at the first assessment if new."""
        ref = self.pseudonymise(self.source, patient)
        ident = episode_id(self.clinic_id, ref)
        self._copy(ident)
        if ident in self.app.repository:
            return self.app.get_episode(ident)
        self.app.open_episode(
            episode_id=ident, patient_ref=ref, clinic_id=self.clinic_id,
            criteria=self.criteria.id, instrument=self._staged(records),
            opened_on=_clinical_date(records[0]), recorded_by=self.recorded_by)
        summary.episodes_opened += 1
        return self.app.get_episode(ident)

    def _staged(self, records: list[SourceAssessment]) -> str:
        """PHQ-9 when the patient has any; else the first instrument the criteria can stage."""
        instruments = list(dict.fromkeys(r.instrument for r in records))
        if "PHQ-9" in instruments or not self.criteria.longitudinal:
            return "PHQ-9"
        for instrument in instruments:
            try:
                return staged_instrument(self.criteria, instrument)
            except DomainError:
                continue
        return "PHQ-9"

    def _one(self, episode: Episode, record: SourceAssessment, summary: ImportSummary) -> None:
        ident = self._assessment_id(record)
        known = episode.assessments.get(ident)
        if record.voided:
            if known is not None and known.voided:  # voided by an earlier import of this record
                summary.duplicates += 1
            elif known is None:
                summary.skip(record.location, NOT_IMPORTED)
            else:
                self.app.void_assessment(episode.id, ident, reason=VOID_REASON,
                                         recorded_by=self.recorded_by)
                summary.voided += 1
            return
        try:
            outcome = self.app.record_assessment(
                episode.id, instrument=record.instrument, administered=record.administered,
                items=record.items, total=record.total, assessment_id=ident,
                recorded_by=self.recorded_by, source=self._source(record))
        except DomainError as exc:
            summary.skip(record.location, f"invalid: {exc.code}")
            return
        self._count(record, outcome, summary)

    def _assessment_id(self, record: SourceAssessment) -> str:
        return "imp-" + self.pseudonymise.digest(f"{self.source}|{record.key}")[:32]

    def _source(self, record: SourceAssessment, digest: str | None = None) -> dict[str, Any]:
        """Provenance kept on the event: system, a keyed hash of the business key (``digest``,
        if computed already; it may name the patient), the source's recorded time and the
        reader's flags."""
        return {"system": self.source,
                "key_hash": digest or self.pseudonymise.digest(f"{self.source}|{record.key}"),
                "recorded_at": record.recorded_at.isoformat() if record.recorded_at else None,
                "flags": list(record.flags)}
