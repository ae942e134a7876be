"""Request and response bodies of the HTTP API (pydantic v2). Routes never expose domain objects.

Integers are strict: ``true`` or ``1.0`` where a score belongs is a 422, never a silent 1.
"""

from __future__ import annotations

from datetime import date
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

from domain.episode import ASSESSMENT_ID

Event = dict[str, Any]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected an ISO date string, YYYY-MM-DD")
    return value


# A calendar date given as "YYYY-MM-DD" (not a number, not a datetime).
IsoDate = Annotated[date, BeforeValidator(_iso_text), Field(examples=["2026-01-05"])]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenEpisode(Request):
    patient_ref: str = Field(min_length=1, max_length=128,
                             description="Pseudonymous patient reference: never a name or MRN.")
    clinic_id: str = Field(min_length=1, max_length=128)
    criteria: str = Field("acnp2006", description="Criteria set id (GET /criteria).")
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = Field(
        None, description='Parameter overrides making a variant, e.g. {"rounding": "half_up"}.')
    instrument: str = Field("PHQ-9", description="Staged instrument: PHQ-9, HAM-D17, QIDS-SR16.")
    opened_on: IsoDate | None = Field(None, description="Default: today (UTC).")


class RecordAssessment(Request):
    assessment_id: str | None = Field(
        None, pattern=ASSESSMENT_ID.pattern,
        description="Client-supplied id: repeating it with the same content is a no-op.")
    instrument: str = Field(examples=["PHQ-9"])
    administered_on: str = Field(
        examples=["2026-01-05", "2026-01-05T09:30:00+01:00"],
        description="A date, or a datetime with UTC offset (its local date is the clinical date; "
                    "its time tells two administrations of one day apart, SPEC G2).")
    items: list[StrictInt | None] | None = Field(
        None, description="Item scores in published order; null = missing. PHQ-9: 9 or 10, "
                          "GAD-7: 7 or 8 (the last: the difficulty question, stored, never "
                          "summed); PHQ-8: 8.")
    total: StrictInt | None = Field(None, description="Reported total (points).")


class VoidAssessment(Request):
    reason: str = Field(min_length=1, max_length=500,
                        description="Why the assessment was entered in error.")


class CloseEpisode(Request):
    discharged_on: IsoDate


class EpisodeCreated(BaseModel):
    episode_id: str
    version: int
    stage: str
    criteria: dict[str, str]
    position: int | None


class AssessmentResult(BaseModel):
    episode_id: str
    assessment_id: str
    version: int
    stage: str
    total: int | float | None = Field(description="Scored total (points), null if unscorable.")
    severity: str | None
    flags: list[str]
    assessment: Event
    stage_events: list[Event] = Field(description="Stage decisions this record asserted.")
    retracted: list[Event] = Field(description="Earlier decisions this record withdrew.")
    replayed: bool
    position: int | None


class ChangeResult(BaseModel):
    episode_id: str
    version: int
    stage: str
    stage_events: list[Event]
    retracted: list[Event]
    outcome: Event | None = None
    position: int | None


class Page(BaseModel):
    items: list[Event]
    next: str | None


class StageHistory(BaseModel):
    episode_id: str
    criteria: dict[str, str]
    as_of: str | None
    events: list[Event]


class AdoptCriteria(Request):
    criteria: str = Field(description="Criteria set id (built-in or custom).")
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = None
    reason: str = Field(min_length=1, max_length=500, description="Why the clinic adopts it.")


class RequestRescoring(Request):
    criteria: str
    params: dict[str, StrictStr | StrictInt | StrictBool] | None = None
    clinic_id: str | None = Field(None, min_length=1, max_length=128)
    as_of: AwareDatetime | None = Field(None, description="Transaction time; default now.")


class RegisterCriteria(Request):
    base: str = Field(description="The built-in set this one derives from.")
    id: str = Field(description="The new set's id: lower-case letters, digits, '.', '-'.")
    params: dict[str, StrictStr | StrictInt | StrictBool] = Field(default_factory=dict)
    source: str = Field(min_length=1, max_length=1000, description="The source the clinic cites.")
