"""Reading a trajectory document (the row format of ``vectors.json``) into observations.

``{"instrument": "PHQ-9", "assessments": [{"date", "total"?, "items"?, "instrument"?,
"recorded_at"?}, ...], "discharge"?: "YYYY-MM-DD"}``. A row's ``date`` is an ISO date or a
datetime with UTC offset: the administration time, whose local date is the clinical date and
which orders two administrations of one day (G2). Used by the offline ``outcomes evaluate``
command and by tests that replay the public vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.criteria.fold import (
    FoldResult,
    Observation,
    fold,
    score_observation,
    staged_instrument,
)
from domain.criteria.sets import CriteriaSet
from domain.errors import DomainError, InvalidInputError, NaiveDatetimeError


class TrajectoryError(InvalidInputError):
    """A row of a trajectory document is malformed; ``row`` is 1-based (None: the document)."""

    code = "invalid-trajectory"

    def __init__(self, message: str, *, row: int | None, field: str | None) -> None:
        super().__init__(message, field=field)
        self.row = row

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "document"
        return f"{where}, field {self.field}: {self.message}" if self.field else \
            f"{where}: {self.message}"


@dataclass(frozen=True)
class Trajectory:
    """A parsed document: the trajectory's instrument, its observations and the discharge date."""

    instrument: str
    observations: tuple[Observation, ...]
    discharge: date | None


def parse_date_or_datetime(value: Any, field: str = "date") -> date | datetime:
    """An ISO date ("2026-01-05") or a timezone-aware ISO datetime ("2026-01-05T09:30:00+01:00").

    Raises NaiveDatetimeError for a datetime without offset, InvalidInputError otherwise.
    """
    if not isinstance(value, str):
        raise InvalidInputError("expected an ISO date (YYYY-MM-DD) or datetime", field=field)
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError("not an ISO date (YYYY-MM-DD) or datetime with offset",
                                field=field) from None  # the value may be personal data
    if moment.tzinfo is None:
        raise NaiveDatetimeError("datetime without a UTC offset", field=field)
    return moment


def parse_clinical_date(value: Any, field: str = "date") -> date:
    """The clinical date of ``value``: a date, or a datetime's own local date (G3). Raises as
    ``parse_date_or_datetime``."""
    parsed = parse_date_or_datetime(value, field)
    return parsed.date() if isinstance(parsed, datetime) else parsed


def parse_aware_datetime(value: Any, field: str) -> datetime:
    """An ISO datetime with a UTC offset. Raises NaiveDatetimeError or InvalidInputError."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInputError("expected an ISO datetime with a UTC offset", field=field)
    if moment.tzinfo is None:
        raise NaiveDatetimeError("datetime without a UTC offset", field=field)
    return moment


def _row(index: int, row: Any, instrument: str) -> Observation:
    if not isinstance(row, Mapping):
        raise TrajectoryError("expected an object", row=index, field=None)
    try:
        items = row.get("items")
        if items is not None and not isinstance(items, list):
            raise InvalidInputError("expected a list of item scores", field="items")
        recorded = row.get("recorded_at")
        administered = parse_date_or_datetime(row.get("date"))
        moment = administered if isinstance(administered, datetime) else None
        return Observation(
            assessment_id=f"row-{index:04d}",
            instrument=row.get("instrument", instrument),
            on=moment.date() if moment else administered,
            items=tuple(items) if items is not None else None,
            total=row.get("total"),
            recorded_at=parse_aware_datetime(recorded, "recorded_at") if recorded else None,
            administered_at=moment,
        )
    except TrajectoryError:
        raise
    except DomainError as exc:
        raise TrajectoryError(exc.message, row=index, field=exc.field) from None


def parse_trajectory(doc: Any) -> Trajectory:
    """Parse a trajectory document (shape in the module docstring). Raises TrajectoryError."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("assessments"), list):
        raise TrajectoryError("expected an object with an 'assessments' list", row=None,
                              field="assessments")
    instrument = doc.get("instrument", "PHQ-9")
    if not isinstance(instrument, str):
        raise TrajectoryError("expected an instrument code", row=None, field="instrument")
    rows = tuple(_row(i, r, instrument) for i, r in enumerate(doc["assessments"], start=1))
    discharge = None
    if doc.get("discharge") is not None:
        try:
            discharge = parse_clinical_date(doc["discharge"], "discharge")
        except DomainError as exc:
            raise TrajectoryError(exc.message, row=None, field="discharge") from None
    return Trajectory(instrument, rows, discharge)


def evaluate(trajectory: Trajectory, criteria: CriteriaSet) -> FoldResult:
    """Fold a parsed trajectory under ``criteria``; errors name the row and field.

    Raises TrajectoryError (a row that cannot be scored, an instrument the set cannot stage).
    """
    try:
        staged_instrument(criteria, trajectory.instrument)
    except DomainError as exc:
        raise TrajectoryError(exc.message, row=None, field="instrument") from None
    for index, obs in enumerate(trajectory.observations, start=1):
        try:
            score_observation(obs, criteria)
        except DomainError as exc:
            raise TrajectoryError(exc.message, row=index, field=exc.field) from None
    return fold(trajectory.observations, criteria, instrument=trajectory.instrument,
                discharge=trajectory.discharge)


def render(result: FoldResult) -> Any:
    """The JSON of ``outcomes evaluate``: the event list (longitudinal sets) or the outcome object
    (``nhs-talking-therapies-2024``; ``cms159`` gives ``{"met": bool, ...}``)."""
    if result.outcome is not None:
        return dict(result.outcome)
    return [event.as_dict() for event in result.events]
