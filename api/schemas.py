"""Request bodies of the HTTP API and the types they share (pydantic v2); the response bodies
are in ``api.responses``. Routes never expose domain objects.

Integers are strict: ``true`` or ``1.0`` where a score belongs is a 422, never a silent 1.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from domain.criteria.custom import CUSTOM_ID
from domain.episode import ASSESSMENT_ID
from domain.instruments import INSTRUMENTS

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
    patient_ref: str = Field(min_length=1, max_length=128,
                             description="Pseudonymous patient reference: never a name or MRN.")
    clinic_id: str = Field(min_length=1, max_length=128)
    criteria: str = Field("acnp2006", max_length=500, description=(
        "Criteria set id (GET /criteria), or a variant in the notation "
        "`frank1991|rounding=half_up`."))
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = Field(
        None, description='Parameter overrides making a variant, e.g. {"rounding": "half_up"}.')
    instrument: str = Field("PHQ-9", json_schema_extra={"enum": list(INSTRUMENTS)}, description=(
        "Staged instrument: PHQ-9, HAM-D17, QIDS-SR16 (MADRS with thresholds as parameters)."))
    opened_on: IsoDate | None = Field(None, description="Default: today (UTC).")


class RecordAssessment(Request):
    assessment_id: str | None = Field(
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
    reason: str = Field(min_length=1, max_length=500,
                        description="Why the assessment was entered in error.")


class CloseEpisode(Request):
    discharged_on: IsoDate


class AdoptCriteria(Request):
    criteria: str = Field(max_length=500, description="Criteria set id (built-in or custom).")
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = None
    reason: str = Field(min_length=1, max_length=500, description="Why the clinic adopts it.")


class RequestRescoring(Request):
    criteria: str
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = None
    clinic_id: str | None = Field(None, min_length=1, max_length=128)
    as_of: IsoDateTime | None = Field(None, description="Transaction time; default now.")


class RegisterCriteria(Request):
    base: str = Field(description="The built-in set this one derives from.")
    id: str = Field(json_schema_extra={"pattern": CUSTOM_ID.pattern},
                    description="The new set's id: 3..64 lower-case letters, digits, '.', '-'.")
    params: dict[str, StrictStr | StrictInt | StrictBool] = Field(default_factory=dict)
    source: str = Field(min_length=1, max_length=1000, description="The source the clinic cites.")
