"""Request bodies of the HTTP API and the types they share (pydantic v2); the response bodies
are in ``api.responses``. Routes never expose domain objects.

Integers are strict: ``true`` or ``1.0`` where a score belongs is a 422, never a silent 1.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Request as HttpRequest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from domain.alerts import ACTIONS, MAX_TEXT, RATING_MAX, RATING_MIN
from domain.criteria.custom import CUSTOM_ID
from domain.episode import ASSESSMENT_ID
from domain.errors import InvalidInputError
from domain.instruments import INSTRUMENTS

# Bidirectional embeddings, overrides (U+202A..U+202E) and isolates (U+2066..U+2069) reorder what
# a reader sees ("Trojan Source", CVE-2021-42574); the marks (LRM, RLM, ALM) are invisible and
# make two ids that look alike differ. Text refuses the first kind, ids both.
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))
BIDI_MARKS = frozenset("\u200e\u200f\u061c")
FREE_TEXT_CONTROLS = frozenset("\t\n")  # a reason may be laid out on several lines


def hostile_character(text: str, *, free_text: bool = False) -> str | None:
    """The first character ``text`` may not hold, as ``U+XXXX``, or None: NUL and every other
    C0 and C1 control and DEL (Unicode category Cc; free text keeps tab and line feed), the
    bidirectional controls, and in ids (``free_text=False``) the bidirectional marks too."""
    for char in text:
        if unicodedata.category(char) == "Cc":
            if free_text and char in FREE_TEXT_CONTROLS:
                continue
        elif char not in BIDI_CONTROLS and (free_text or char not in BIDI_MARKS):
            continue
        return f"U+{ord(char):04X}"
    return None


def _id_text(value: str) -> str:
    if (char := hostile_character(value)) is not None:
        raise ValueError(f"control or bidirectional character {char} is not allowed in an id")
    return value


def _free_text(value: str) -> str:
    if (char := hostile_character(value, free_text=True)) is not None:
        raise ValueError(f"control or bidirectional character {char} is not allowed")
    return value


# An id (patient_ref, clinic_id, criteria ids, parameter names): no control or bidi character.
IdText = Annotated[str, AfterValidator(_id_text)]
# Free text (reasons, sources): no control character but tab and line feed, no bidi control.
FreeText = Annotated[str, AfterValidator(_free_text)]
Params = dict[IdText, Annotated[StrictStr, AfterValidator(_id_text)] | StrictInt | StrictBool]


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameter names a route (or dependency) declares, its dependencies' included."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def clean_parameters(request: HttpRequest) -> None:
    """Route dependency: the query names only parameters the route declares (a misspelt filter
    would otherwise be ignored and answer everything), and every path and query parameter is an
    id with no control or bidirectional character; else ``InvalidInputError`` (422) naming it."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        declared = _query_names(route.dependant)
        for name in request.query_params:
            if name not in declared:
                raise InvalidInputError(
                    f"unknown query parameter; this route takes {', '.join(sorted(declared)) or 'none'}",
                    field=name if hostile_character(name) is None else "query")
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and (char := hostile_character(value)) is not None:
            raise InvalidInputError(
                f"{name}: control or bidirectional character {char} is not allowed", field=name)


# RFC 3339 §5.6 date-time; the offset is required (a naive time is refused by AwareDatetime too).
RFC3339_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected an ISO date string, YYYY-MM-DD")
    return value


def _iso_datetime(value: Any) -> Any:
    """An RFC 3339 date-time string (§5.6, what the document's ``format: date-time`` says),
    parsed; never a number (pydantic would read ``0.5`` as a Unix time), nor the other ISO 8601
    forms ``datetime.fromisoformat`` reads (a space for T, basic format, week dates). The value
    is not quoted back: it may be personal data."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and RFC3339_DATE_TIME.match(value):
        try:
            return datetime.fromisoformat(value.upper())  # RFC 3339 allows t and z
        except ValueError:
            pass
    raise ValueError("expected an RFC 3339 date-time with UTC offset, e.g. "
                     "2026-01-05T09:30:00+01:00")


# A calendar date given as "YYYY-MM-DD" (not a number, not a datetime).
IsoDate = Annotated[date, BeforeValidator(_iso_text), Field(examples=["2026-01-05"])]
# A moment given as an ISO 8601 date-time with its UTC offset (not a number, not a bare date).
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime),
                        Field(examples=["2026-03-01T12:00:00+00:00"])]
Instrument = Annotated[str, Field(json_schema_extra={"enum": list(INSTRUMENTS)},
                                  examples=["PHQ-9"])]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenEpisode(Request):
    patient_ref: IdText = Field(min_length=1, max_length=128,
                             description="Pseudonymous patient reference: never a name or MRN.")
    clinic_id: IdText = Field(min_length=1, max_length=128)
    criteria: IdText = Field("acnp2006", max_length=500, description=(
        "Criteria set id (GET /criteria), or a variant in the notation "
        "`frank1991|rounding=half_up`."))
    params: Params | None = Field(
        None, description='Parameter overrides making a variant, e.g. {"rounding": "half_up"}.')
    instrument: str = Field("PHQ-9", json_schema_extra={"enum": list(INSTRUMENTS)}, description=(
        "Staged instrument: PHQ-9, HAM-D17, QIDS-SR16 (MADRS with thresholds as parameters)."))
    opened_on: IsoDate | None = Field(None, description="Default: today (UTC).")


class RecordAssessment(Request):
    assessment_id: str | None = Field(  # the pattern admits no control character
        None, pattern=ASSESSMENT_ID.pattern,
        description="Client-supplied id: repeating it with the same content is a no-op.")
    instrument: Instrument
    administered_on: str = Field(
        examples=["2026-01-05", "2026-01-05T09:30:00+01:00"],
        description="A date, or a datetime with UTC offset (its local date is the clinical date; "
                    "its time tells two administrations of one day apart, SPEC G2).")
    # Ranges are checked per instrument by the domain (problem codes item-out-of-range,
    # total-out-of-range); the schema states the bounds every instrument shares.
    items: list[Annotated[StrictInt | None, Field(json_schema_extra={"minimum": 0})]] | None = \
        Field(None, description="Item scores in published order; null = missing. PHQ-9: 9 or 10, "
                                "GAD-7: 7 or 8 (the last: the difficulty question, stored, never "
                                "summed); PHQ-8: 8.")
    total: StrictInt | None = Field(None, json_schema_extra={"minimum": 0},
                                    description="Reported total (points).")


class VoidAssessment(Request):
    reason: FreeText = Field(min_length=1, max_length=500,
                             description="Why the assessment was entered in error.")


class CloseEpisode(Request):
    discharged_on: IsoDate


class AdoptCriteria(Request):
    criteria: IdText = Field(max_length=500, description="Criteria set id (built-in or custom).")
    params: Params | None = None
    reason: FreeText = Field(min_length=1, max_length=500, description="Why the clinic adopts it.")


class RequestRescoring(Request):
    criteria: IdText
    params: Params | None = None
    clinic_id: IdText | None = Field(None, min_length=1, max_length=128)
    as_of: IsoDateTime | None = Field(None, description="Transaction time; default now.")


class RegisterCriteria(Request):
    base: IdText = Field(description="The built-in set this one derives from.")
    id: IdText = Field(json_schema_extra={"pattern": CUSTOM_ID.pattern},
                    description="The new set's id: 3..64 lower-case letters, digits, '.', '-'.")
    params: Params = Field(default_factory=dict)
    source: FreeText = Field(min_length=1, max_length=1000, description="The source the clinic cites.")


class AcknowledgeAlert(Request):
    action: str = Field(json_schema_extra={"enum": list(ACTIONS)}, examples=["contacted_patient"],
                        description="What was done about the alert (coded).")
    note: FreeText = Field("", max_length=MAX_TEXT, description="Free text; may be empty.")


class ResolveAlert(Request):
    reason: FreeText = Field(min_length=1, max_length=MAX_TEXT,
                             description="Why the alert needs nothing more.")


class SupportRating(Request):
    rating: StrictInt = Field(ge=RATING_MIN, le=RATING_MAX, description=(
        "1 = a serious problem in this domain .. 5 = no concern."))
    note: FreeText = Field("", max_length=MAX_TEXT)


class RecordSupportReview(Request):
    """A clinical support checklist in the domains of Lambert's Clinical Support Tools."""

    alert_id: IdText | None = Field(None, max_length=64,
                                    description="The (off-track) alert the review follows.")
    administered_on: IsoDate | None = Field(None, description="Default: today (UTC).")
    alliance: SupportRating = Field(description="The therapeutic alliance.")
    motivation: SupportRating = Field(description="The patient's motivation for change.")
    social_support: SupportRating = Field(description="Support from the patient's people.")
    life_events: SupportRating = Field(description="Negative life events.")
