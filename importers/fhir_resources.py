"""One FHIR resource at a time: files to entries, entries to models, models to answers.

Each resource is parsed with the ``fhir.resources`` models: R4B first (FHIR R4 content), then
STU3 (a QuestionnaireResponse citing its Questionnaire by a Reference, an Observation with
``related``); one that fits neither (DSTU2, invalid) gets a ``problem``. Bundles (any type,
nested too) are opened entry by entry, so one bad entry only spoils itself. Clinical content is
read from the models only; the raw JSON is looked at for "resourceType", "id" and the Bundle
envelope (``entry``, ``fullUrl``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class as r4b_model
from fhir.resources.STU3 import get_fhir_model_class as stu3_model
from pydantic import ValidationError

from domain.instruments import Instrument
from importers import fhir_answers as fa
from importers.fhir_answers import Answer, SkipResource
from importers.records import Skipped, SourceAssessment, UnreadableFileError

ASSESSMENT_TYPES = frozenset({"QuestionnaireResponse", "Observation"})
IMPORTED = frozenset({"completed", "amended", "final", "corrected"})
VOIDED = frozenset({"entered-in-error", "cancelled"})
INVALID = "unsupported FHIR version or invalid resource"
NAIVE = "datetime without UTC offset"
_NAIVE_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$")


@dataclass(eq=False)
class Entry:
    """One resource as found in a file (a Bundle entry or the whole file), parsed on demand.

    ``number``: position among the file's resources (from 0). ``model``: the R4B or STU3 model
    once parsed, else ``problem`` says why not. ``record``: what the import reports for it.
    """

    raw: dict[str, Any]
    path: Path
    number: int
    full_url: str | None = None
    model: Any = None
    problem: str | None = None
    record: SourceAssessment | Skipped | None = None

    @property
    def type(self) -> str:
        kind = self.raw.get("resourceType")
        return kind if isinstance(kind, str) else "?"

    @property
    def location(self) -> str:
        """"<file name>#<type>/<id>" (or "#<type>[<n>]" without an id): no patient data."""
        ident = self.raw.get("id")
        where = f"/{ident}" if isinstance(ident, str) and ident else f"[{self.number}]"
        return f"{self.path.name}#{self.type}{where}"

    def skip(self, reason: str) -> None:
        """Report it as Skipped for ``reason``, unless something was reported already."""
        if self.record is None:
            self.record = Skipped(self.location, reason)


# ---- files and models -------------------------------------------------------------------------

def fhir_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files to read: a file as given; a folder's *.json files, recursively, sorted (hidden
    files and folders left out)."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        yield from sorted(p for p in path.rglob("*") if p.suffix.lower() == ".json" and p.is_file()
                          and not any(part.startswith(".") for part in p.relative_to(path).parts))


def load_file(path: Path) -> list[Entry]:
    """The resources of one file (Bundles opened). Raises UnreadableFileError when the file
    cannot be read, is not JSON, or is not a FHIR resource (no "resourceType")."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(str(path), exc.strerror or "cannot open") from None
    try:
        doc = json.loads(data)
    except ValueError:
        raise UnreadableFileError(str(path), "not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise UnreadableFileError(str(path), "not a FHIR resource (no resourceType)")
    entries: list[Entry] = []
    _collect(doc, path, None, entries)
    return entries


def _collect(doc: dict[str, Any], path: Path, full_url: str | None, out: list[Entry]) -> None:
    """Append ``doc`` to ``out``, or its entries' resources (with their fullUrl) for a Bundle."""
    entries = doc.get("entry", [])
    if doc.get("resourceType") != "Bundle" or not isinstance(entries, list):
        out.append(Entry(doc, path, len(out), full_url))
        return
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            url = entry.get("fullUrl")
            _collect(entry["resource"], path, url if isinstance(url, str) else None, out)


def parse(entry: Entry) -> None:
    """Set ``entry.model`` (R4B, else STU3) or ``entry.problem``: "datetime without UTC offset"
    when a date-time lacks its offset, else "unsupported FHIR version or invalid resource"."""
    errors: list[Any] = []
    for model_class in (r4b_model, stu3_model):
        try:
            cls = model_class(entry.type)
        except (ValueError, KeyError):
            continue
        try:
            entry.model = cls.model_validate(entry.raw)
            return
        except ValidationError as exc:
            errors.extend(exc.errors())
    naive = any(isinstance(e.get("input"), str) and _NAIVE_TEXT.match(e["input"]) for e in errors)
    entry.problem = NAIVE if naive else INVALID


def as_list(value: Any) -> list[Any]:
    """A repeated element as a list (QuestionnaireResponse.identifier is single, others lists)."""
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def identifier(resource: Any) -> str | None:
    """"<system>|<value>" of the resource's first identifier with a value."""
    for ident in as_list(resource.identifier):
        if ident.value:
            return f"{ident.system or ''}|{ident.value}"
    return None


def names(entry: Entry) -> list[str]:
    """The references that find ``entry``: its fullUrl, "<type>/<id>", and for a Questionnaire
    its canonical URL (with and without version) and "identifier:<system>|<value>"."""
    found = [entry.full_url] if entry.full_url else []
    if isinstance(entry.raw.get("id"), str):
        found.append(f"{entry.type}/{entry.raw['id']}")
    model = entry.model
    if entry.type == "Questionnaire" and model is not None:
        if model.url:
            found += [model.url, *([f"{model.url}|{model.version}"] if model.version else [])]
        found += [f"identifier:{i.system or ''}|{i.value}" for i in as_list(model.identifier) if i.value]
    return found


def links(observation: Any, r4_field: str, stu3_type: str) -> list[str]:
    """References in ``hasMember``/``derivedFrom`` (R4) or ``related`` of that type (STU3)."""
    refs = [r.reference for r in getattr(observation, r4_field, None) or () if r.reference]
    refs += [r.target.reference for r in getattr(observation, "related", None) or ()
             if r.type == stu3_type and r.target is not None and r.target.reference]
    return refs


# ---- the parts of an assessment outside its answers ---------------------------------------------

@dataclass(frozen=True)
class Common:
    """Status, patient reference, clinical time and recorded time of an assessment."""

    voided: bool
    patient: str
    administered: date | datetime
    recorded_at: datetime | None


def _status(status: str | None) -> bool:
    """True when the source voided it; raises SkipResource for a status not (yet) final."""
    if status in VOIDED:
        return True
    if status in IMPORTED:
        return False
    raise SkipResource(f"not final ({status})")


def _patient(subject: Any) -> str:
    """The subject's reference string ("Patient/example"); raises SkipResource without one."""
    reference = getattr(subject, "reference", None)
    if not reference:
        raise SkipResource("no patient reference")
    return str(reference)


def _clinical(value: date | datetime | str | None) -> date | datetime:
    """A full date, or a timezone-aware datetime. Raises SkipResource for none, a naive
    datetime or a partial date ("2022-11")."""
    if value is None:
        raise SkipResource("no clinical date")
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise SkipResource(NAIVE)
        return _plain_offset(value)
    if isinstance(value, date):
        return value
    raise SkipResource("clinical date is not a full date")


def _recorded(resource: Any) -> datetime | None:
    """When the source recorded it: ``issued`` (Observation), else ``meta.lastUpdated``."""
    meta = resource.meta
    for value in (getattr(resource, "issued", None), meta.lastUpdated if meta else None):
        if isinstance(value, datetime) and value.utcoffset() is not None:
            return _plain_offset(value)
    return None


def _plain_offset(value: datetime) -> datetime:
    """The same instant with a standard-library ``timezone`` (the models give pydantic's)."""
    offset = value.utcoffset()
    return value if offset is None else value.replace(tzinfo=timezone(offset))


def response_common(response: Any) -> Common:
    """Status, subject, ``authored`` and ``meta.lastUpdated`` of a QuestionnaireResponse."""
    return Common(_status(response.status), _patient(response.subject),
                  _clinical(response.authored), _recorded(response))


def observation_common(observation: Any) -> Common:
    """Status, subject, effective[x] (never ``issued``) and ``issued``/``meta.lastUpdated``."""
    period = observation.effectivePeriod
    times = (observation.effectiveDateTime, period.start if period else None,
             getattr(observation, "effectiveInstant", None))
    when = next((t for t in times if t is not None), None)
    return Common(_status(observation.status), _patient(observation.subject), _clinical(when),
                  _recorded(observation))


# ---- questionnaires and responses --------------------------------------------------------------

@dataclass
class QuestionnaireInfo:
    """What a Questionnaire tells about its responses: ``names`` (codes, URL, title, name,
    identifiers),
    linkId -> LOINC question code, linkId -> {answer code: ordinal}."""

    names: list[str]
    questions: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Decimal]] = field(default_factory=dict)


def _walk(items: Any) -> Iterator[Any]:
    """Items of a Questionnaire or QuestionnaireResponse, depth first (nested in answers too)."""
    for item in items or ():
        yield item
        yield from _walk(item.item)
        for answer in getattr(item, "answer", None) or ():
            yield from _walk(answer.item)


def _question(item: Any) -> str | None:
    """The LOINC code of an item: from its codes, else its definition, else its linkId."""
    found = fa.codes_in(item.definition) or fa.codes_in(item.linkId)
    return fa.loinc_code(getattr(item, "code", None)) or (found[-1] if found else None)


def questionnaire_info(model: Any) -> QuestionnaireInfo:
    """Question codes and answer-option ordinals (R4 answerOption, STU3 option) by linkId."""
    named = [c.code for c in model.code or () if c.code] + [
        model.url or "", getattr(model, "title", None) or "", getattr(model, "name", None) or ""]
    info = QuestionnaireInfo(named + [i.value for i in as_list(model.identifier) if i.value])
    for item in _walk(model.item):
        code = _question(item)
        if code:
            info.questions[item.linkId] = code
        options = getattr(item, "answerOption", None) or getattr(item, "option", None) or ()
        info.options[item.linkId] = {
            o.valueCoding.code: value for o in options
            if o.valueCoding is not None and (value := fa.ordinal([o, o.valueCoding])) is not None}
    return info


def questionnaire_refs(response: Any) -> list[str]:
    """How a response names its Questionnaire: R4 canonical, STU3 reference or identifier."""
    ref = response.questionnaire
    if ref is None or isinstance(ref, str):
        return [ref] if ref else []
    found = [ref.reference] if ref.reference else []
    ident = ref.identifier
    if ident is not None and ident.value:
        found.append(f"identifier:{ident.system or ''}|{ident.value}")
    return found


def _response_answer(question: str, answer: Any, options: dict[str, Decimal]) -> Answer:
    """One QuestionnaireResponse answer (None = unanswered) as an Answer."""
    if answer is None:
        return Answer(question)
    coding = answer.valueCoding
    level = fa.ordinal([coding, answer])
    if level is None and coding is not None:
        level = options.get(coding.code)
    numbers = (answer.valueInteger, answer.valueDecimal, answer.valueString)
    number = next((n for n in numbers if n is not None), None)
    if number is None:
        number = fa.quantity(answer.valueQuantity)
    return Answer(question, fa.answer_codes([coding]), level, number)


def response_answers(response: Any, info: QuestionnaireInfo | None) -> list[Answer]:
    """The answers of a response whose question has a LOINC code (first answer of each item);
    question codes and option ordinals come from ``info`` when the Questionnaire was found."""
    answers = []
    for item in _walk(response.item):
        question = (info.questions.get(item.linkId) if info else None) or _question(item)
        if question:
            options = info.options.get(item.linkId, {}) if info else {}
            answers.append(_response_answer(question, (item.answer or [None])[0], options))
    return answers


def named_instrument(texts: Iterable[str]) -> Instrument | None:
    """The instrument whose panel or total LOINC code appears in one of ``texts``."""
    return fa.instrument_for(c for text in texts for c in fa.codes_in(text)
                             if c in fa.PANELS or c in fa.TOTALS)


# ---- observations -----------------------------------------------------------------------------

def observation_answers(observation: Any) -> list[Answer]:
    """The Observation's own value and its components', for codes known to an instrument."""
    answers = []
    for part in (observation, *(observation.component or ())):
        question = fa.loinc_code(part.code.coding if part.code else None)
        if question is None:
            continue
        concept = part.valueCodeableConcept
        codings = list(concept.coding or ()) if concept else []
        number = getattr(part, "valueInteger", None)  # STU3 Observations have no valueInteger
        number = part.valueString if number is None else number
        number = fa.quantity(part.valueQuantity) if number is None else number
        answers.append(Answer(question, fa.answer_codes(codings), fa.ordinal(codings), number))
    return answers


def candidates(answers: list[Answer]) -> list[Instrument]:
    """Instruments an Observation may belong to: the one its panel/total code names, else every
    instrument with one of its item codes (44250-9: PHQ-9 and PHQ-2)."""
    named = named_instrument(a.question for a in answers)
    if named is not None:
        return [named]
    found = {i.code: i for a in answers for i in fa.ITEMS.get(a.question, ())}
    return list(found.values())
