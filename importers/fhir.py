"""FHIR R4 and STU3 files as source records: QuestionnaireResponses and Observations.

``read_fhir(paths)`` reads files and folders as ONE import and yields one SourceAssessment or
Skipped per resource (Bundle entries included), in file order. Parsing is in
``importers.fhir_resources`` (R4B models, then STU3), codes and scores in
``importers.fhir_answers``. Resources are reconciled across the whole import:
- an Observation panel (``hasMember``; STU3 ``related`` has-member) and its members are ONE
  assessment, reported on the panel; the members say "member of an imported panel";
- Observations derived from a QuestionnaireResponse that was imported (yielded an assessment)
  are the same assessment: the response is the primary record (every answer, the cited
  questionnaire); they say "derived from an imported QuestionnaireResponse";
- standalone item and total Observations of one patient at one effective instant are grouped,
  one assessment per instrument, reported on the first; the others say "grouped into another
  Observation's assessment".

Statuses [E]: QuestionnaireResponse completed/amended and Observation final/amended/corrected
are imported (CMS159 counts only final, amended, corrected results; SPEC §2.5); entered-in-error
and cancelled give ``voided=True`` (the pipeline voids an earlier import); in-progress, stopped,
registered, preliminary and unknown are Skipped "not final (<status>)": they may still change.

Keys: "<source>|<system>|<value>" from the resource identifier, else "<source>|<fullUrl>", else
"<source>|<file name>#<type>/<id>"; a group of Observations takes its smallest member key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.instruments import INSTRUMENTS, Instrument
from importers import fhir_resources as fr
from importers.fhir_answers import Answer, SkipResource, instrument_for, named_in, scores
from importers.fhir_resources import Common, Entry, fhir_files
from importers.records import Skipped, SourceAssessment, UnreadableFileError

Record = SourceAssessment | Skipped
NOT_ASSESSMENT = "not an assessment resource"
DERIVED = "derived from an imported QuestionnaireResponse"
IN_PANEL = "member of an imported panel"
GROUPED = "grouped into another Observation's assessment"

__all__ = ["FhirImport", "fhir_files", "read_fhir", "read_fhir_file"]


def _variants(reference: str) -> list[str]:
    """``reference`` and what it may also be written as: without "/_history/n", without a
    canonical "|version", and the trailing "<type>/<id>" of an absolute URL."""
    if reference.startswith("identifier:"):
        return [reference]
    plain = re.sub(r"/_history/[^/]*$", "", reference).split("|")[0]
    tail = re.search(r"([A-Z][A-Za-z]+/[^/]+)$", plain)
    return list(dict.fromkeys([reference, plain, *([tail.group(1)] if tail else [])]))


class _Index:
    """References to the resources of one import; the referring entry's own file first."""

    def __init__(self, entries: list[Entry]) -> None:
        self._files: dict[Path, dict[str, Entry]] = {}
        self._all: dict[str, Entry] = {}
        for entry in entries:
            for name in fr.names(entry):
                self._files.setdefault(entry.path, {}).setdefault(name, entry)
                self._all.setdefault(name, entry)

    def find(self, reference: str | None, near: Entry) -> Entry | None:
        for name in _variants(reference or ""):
            found = self._files.get(near.path, {}).get(name) or self._all.get(name)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class _Loose:
    """A standalone Observation waiting to be grouped."""

    entry: Entry
    answers: list[Answer]
    common: Common


class _Reconciler:
    """Turns the resources of one import into one record each (see the module docstring)."""

    def __init__(self, entries: list[Entry], source: str) -> None:
        self.entries, self.source = entries, source
        for entry in entries:
            if entry.type in fr.ASSESSMENT_TYPES or entry.type == "Questionnaire":
                fr.parse(entry)
        self.index = _Index(entries)

    def run(self) -> list[Record]:
        for entry in self.entries:
            if entry.type not in fr.ASSESSMENT_TYPES:
                entry.skip(fr.INVALID if entry.type in ("?", "Bundle") else NOT_ASSESSMENT)
            elif entry.problem:
                entry.skip(entry.problem)
        for entry in self._unsettled("QuestionnaireResponse"):
            self._attempt([entry], self._response, entry)
        self._derived()
        self._panels()
        self._groups()
        return [e.record for e in self.entries if e.record is not None]

    def _unsettled(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.type == kind and e.record is None and e.model is not None]

    def _attempt(self, entries: list[Entry], build: Callable[..., SourceAssessment],
                 *args: Any) -> None:
        """Record ``build(*args)`` on the first entry; on SkipResource all entries say why."""
        try:
            entries[0].record = build(*args)
        except SkipResource as exc:
            for entry in entries:
                entry.skip(exc.reason)

    def _key(self, entry: Entry) -> str:
        tail = fr.identifier(entry.model) or entry.full_url or entry.location
        return f"{self.source}|{tail}"

    def _assessment(self, entries: list[Entry], instrument: Instrument | None,
                    answers: list[Answer], common: Common) -> SourceAssessment:
        """The assessment reported on ``entries[0]``; raises SkipResource ("unknown instrument",
        "no scored answers", not whole numbers)."""
        if instrument is None:
            raise SkipResource("unknown instrument")
        items, total, flags = scores(instrument, answers)
        if items is None and total is None and not common.voided:
            raise SkipResource("no scored answers")
        return SourceAssessment(
            key=min(self._key(e) for e in entries), patient=common.patient,
            instrument=instrument.code, administered=common.administered, items=items,
            total=total, recorded_at=common.recorded_at, flags=flags, voided=common.voided,
            location=entries[0].location)

    # QuestionnaireResponses: the primary record.
    def _response(self, entry: Entry) -> SourceAssessment:
        """Instrument from the cited questionnaire (its codes, or a panel LOINC in the
        reference), else from the items' LOINC codes."""
        response = entry.model
        common = fr.response_common(response)
        info = self._questionnaire(entry)
        answers = fr.response_answers(response, info)
        cited = fr.questionnaire_refs(response) + (info.names if info else [])
        instrument = (fr.named_instrument(cited) or _named_only(cited, answers)
                      or instrument_for(a.question for a in answers))
        return self._assessment([entry], instrument, answers, common)

    def _questionnaire(self, entry: Entry) -> fr.QuestionnaireInfo | None:
        """The cited Questionnaire: contained ("#id") or elsewhere in the import."""
        for ref in fr.questionnaire_refs(entry.model):
            if ref.startswith("#"):
                found = [c for c in entry.model.contained or ()
                         if c.get_resource_type() == "Questionnaire" and c.id == ref[1:]]
                if found:
                    return fr.questionnaire_info(found[0])
            target = self.index.find(ref, entry)
            if target is not None and target.type == "Questionnaire" and target.model is not None:
                return fr.questionnaire_info(target.model)
        return None

    # Observations.
    def _derived(self) -> None:
        """Observations (and their panel members) derived from an imported response."""
        for entry in self._unsettled("Observation"):
            refs = fr.links(entry.model, "derivedFrom", "derived-from")
            sources = [self.index.find(r, entry) for r in refs]
            if any(s is not None and s.type == "QuestionnaireResponse"
                   and isinstance(s.record, SourceAssessment) for s in sources):
                for settled in (entry, *self._members(entry)):
                    settled.skip(DERIVED)

    def _members(self, panel: Entry) -> list[Entry]:
        """The Observations a panel has as members, nested panels flattened, in order."""
        found: list[Entry] = []
        stack = list(reversed(fr.links(panel.model, "hasMember", "has-member")))
        while stack:
            member = self.index.find(stack.pop(), panel)
            if (member is None or member is panel or member in found
                    or member.type != "Observation" or member.model is None):
                continue
            found.append(member)
            stack.extend(reversed(fr.links(member.model, "hasMember", "has-member")))
        return found

    def _panels(self) -> None:
        """Panels not inside another panel: one assessment each; members are consumed."""
        panels = [e for e in self._unsettled("Observation") if self._members(e)]
        inner = {id(m) for p in panels for m in self._members(p)}
        for panel in (p for p in panels if id(p) not in inner):
            members = self._members(panel)
            self._attempt([panel], self._panel, panel, members)
            for member in members:
                member.skip(IN_PANEL)

    def _panel(self, panel: Entry, members: list[Entry]) -> SourceAssessment:
        """Panel and member values (voided members left out); the panel's status and times."""
        answers = fr.observation_answers(panel.model) + [
            a for m in members if m.model.status not in fr.VOIDED
            for a in fr.observation_answers(m.model)]
        instrument = instrument_for(a.question for a in answers)
        return self._assessment([panel], instrument, answers, fr.observation_common(panel.model))

    def _groups(self) -> None:
        """Standalone Observations: one assessment per patient, effective instant, voided or
        not, and instrument."""
        buckets: dict[tuple[Any, ...], list[_Loose]] = {}
        for entry in self._unsettled("Observation"):
            try:
                answers = fr.observation_answers(entry.model)
                if not fr.candidates(answers):
                    raise SkipResource("unknown instrument")
                common = fr.observation_common(entry.model)
            except SkipResource as exc:
                entry.skip(exc.reason)
                continue
            key = (common.patient, common.administered, common.voided)
            buckets.setdefault(key, []).append(_Loose(entry, answers, common))
        for bucket in buckets.values():
            for code, members in _by_instrument(bucket).items():
                self._group(INSTRUMENTS[code], members)

    def _group(self, instrument: Instrument, members: list[_Loose]) -> None:
        entries = [m.entry for m in members]
        recorded = [m.common.recorded_at for m in members if m.common.recorded_at is not None]
        first = members[0].common
        common = Common(first.voided, first.patient, first.administered,
                        max(recorded) if recorded else None)
        answers = [a for m in members for a in m.answers]
        self._attempt(entries, self._assessment, entries, instrument, answers, common)
        for entry in entries[1:]:
            entry.skip(GROUPED)


def _named_only(cited: list[str], answers: list[Answer]) -> Instrument | None:
    """A PHQ-8 named by the cited questionnaire (``named_in``), provided every answered
    question is one of its items: a form named PHQ-8 that answers item 9 is read as a PHQ-9,
    whose item 9 keeps its safety meaning (SPEC §1.1)."""
    named = named_in(cited)
    if named is None:
        return None
    own = {named.loinc_panel, named.loinc_total, *named.loinc_items}
    return named if all(a.question in own for a in answers if not a.empty) else None


def _by_instrument(bucket: list[_Loose]) -> dict[str, list[_Loose]]:
    """Observations of one patient and instant by instrument: an item code two instruments
    share (44250-9: PHQ-9, PHQ-2) goes to the one the bucket's other codes name."""
    codes = [a.question for m in bucket for a in m.answers]
    groups: dict[str, list[_Loose]] = {}
    for member in bucket:
        options = fr.candidates(member.answers)
        theirs = {c for i in options for c in (i.loinc_panel, i.loinc_total, *i.loinc_items)}
        best = instrument_for(c for c in codes if c in theirs)
        chosen = best if best in options else options[0]
        groups.setdefault(chosen.code, []).append(member)
    return groups


# ---- public API -------------------------------------------------------------------------------

class FhirImport:
    """One import: add files one at a time (each may raise UnreadableFileError), then read the
    reconciled records (references resolve across every file added)."""

    def __init__(self, source: str = "fhir") -> None:
        self.source = source
        self._entries: list[Entry] = []

    def add_file(self, path: Path) -> int:
        """Read one JSON file; returns how many resources it holds (a Bundle's entries).
        Raises UnreadableFileError (cannot open, not JSON, no "resourceType")."""
        entries = fr.load_file(path)
        self._entries.extend(entries)
        return len(entries)

    def records(self) -> list[Record]:
        """One SourceAssessment or Skipped per resource added, in file order."""
        return _Reconciler(self._entries, self.source).run()


def read_fhir_file(path: Path, source: str = "fhir") -> list[Record]:
    """The records of one file read on its own (references resolve inside the file only).
    Raises UnreadableFileError."""
    batch = FhirImport(source)
    batch.add_file(path)
    return batch.records()


def read_fhir(paths: Iterable[Path], *, source: str = "fhir",
              on_unreadable: Callable[[UnreadableFileError], None] | None = None
              ) -> Iterator[SourceAssessment | Skipped]:
    """Source records from FHIR JSON files and folders (recursively, *.json) as ONE import.

    Yields one SourceAssessment or Skipped per resource (Bundle entries included), in file
    order, once every file is read, since panels, derived Observations and Questionnaires are
    resolved across files (the US Core examples are one file per resource). Nothing is read
    before iteration starts. An unreadable file (cannot open, not JSON, no "resourceType")
    raises UnreadableFileError before anything is yielded, unless ``on_unreadable`` is given:
    it is then called with the error and the other files are still imported. ``source``
    prefixes every business key.
    """
    batch = FhirImport(source)
    for path in fhir_files(paths):
        try:
            batch.add_file(path)
        except UnreadableFileError as exc:
            if on_unreadable is None:
                raise
            on_unreadable(exc)
    yield from batch.records()
