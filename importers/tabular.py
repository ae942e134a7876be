"""CSV files (spreadsheets, trial exports, Synthea) as source records, with a column mapping.

The mapping names the columns: the patient; the clinical date (ISO date or datetime) or a day
offset plus an anchor date; the instrument (a column holding an instrument code or a LOINC total
code, or one fixed instrument); the total or the item columns; optionally a baseline column, for
trial files that repeat the baseline score on every row (recorded once, at day 0); optionally a
row key column. Numbers may be written "21" or "21.0"; anything else that is not a whole number
skips that row with a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from domain.errors import DomainError
from domain.instruments import INSTRUMENTS
from domain.trajectory import parse_date_or_datetime
from importers.records import Skipped, SourceAssessment, UnreadableFileError

# Instrument codes and LOINC total (and panel) codes -> instrument code.
_BY_CODE = {code: code for code in INSTRUMENTS} | {
    loinc: i.code for i in INSTRUMENTS.values() for loinc in (i.loinc_total, i.loinc_panel) if loinc}


class MissingColumnError(ValueError):
    """The mapping names columns the header lacks: ``missing`` and the file's ``columns``."""

    def __init__(self, missing: list[str], columns: list[str]) -> None:
        super().__init__(f"no column {', '.join(missing)} in the header")
        self.missing, self.columns = missing, columns


def csv_header(path: Path) -> list[str]:
    """The column names of the file's header row. Raises UnreadableFileError (cannot open,
    not UTF-8, not CSV)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle).fieldnames or [])
    except OSError as exc:
        raise UnreadableFileError(str(path), exc.strerror or "cannot open") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFileError(str(path), str(exc)) from None


@dataclass(frozen=True)
class CsvMapping:
    """Which column holds what (column names as in the header row)."""

    patient: str
    date: str | None = None
    day: str | None = None
    anchor: dt.date | None = None
    instrument: str | None = None
    fixed_instrument: str | None = None
    total: str | None = None
    items: tuple[str, ...] = ()
    baseline: str | None = None
    key: str | None = None

    def check(self, header: list[str]) -> None:
        """Raises ValueError when the mapping is incomplete, MissingColumnError (a ValueError)
        when it names a column not in ``header``."""
        self.validate()
        named = [self.patient, self.date, self.day, self.instrument, self.total, self.baseline,
                 self.key, *self.items]
        missing = list(dict.fromkeys(c for c in named if c is not None and c not in header))
        if missing:
            raise MissingColumnError(missing, header)

    def validate(self) -> None:
        """Raises ValueError when the options contradict or miss each other (no file needed)."""
        if (self.date is None) == (self.day is None):
            raise ValueError("give exactly one of --date or --day (with --anchor)")
        if self.day is not None and self.anchor is None:
            raise ValueError("--day needs --anchor (the date of day 0)")
        if (self.instrument is None) == (self.fixed_instrument is None):
            raise ValueError("give exactly one of --instrument-column or --instrument")
        if self.total is None and not self.items:
            raise ValueError("give --total or --items")
        if self.fixed_instrument is not None and self.fixed_instrument not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {self.fixed_instrument!r}")
        if self.baseline is not None and self.anchor is None:
            raise ValueError("--baseline needs --anchor (the date of day 0, the baseline visit)")


def whole_number(text: str) -> int | None:
    """"21" or "21.0" -> 21; "" or "NA" -> None. Raises ValueError for anything else."""
    text = text.strip()
    if text in ("", "NA", "NaN", "null"):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text[:20]!r}") from None
    if value != value.to_integral_value():
        raise ValueError(f"not a whole number: {text[:20]!r}")
    return int(value)


def read_csv(path: Path, mapping: CsvMapping) -> Iterator[SourceAssessment | Skipped]:
    """Source records from one CSV file, one per row (plus one baseline per patient when
    ``mapping.baseline`` is set). Raises UnreadableFileError (missing file, no header, a mapping
    that does not fit the header)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnreadableFileError(str(path), exc.strerror or "cannot open") from None
    with handle:
        reader = csv.DictReader(handle, restval="")  # a short row: its missing cells are empty
        try:
            mapping.check(list(reader.fieldnames or []))
        except ValueError as exc:  # UnicodeDecodeError included
            raise UnreadableFileError(str(path), str(exc)) from None
        baselines: set[str] = set()
        try:
            for number, row in enumerate(reader, start=2):
                where = f"{path.name}:{number}"
                try:
                    yield from _row(row, mapping, where, baselines)
                except (ValueError, DomainError) as exc:
                    yield Skipped(where, f"unreadable value: {_reason(exc)}")
        except (UnicodeDecodeError, csv.Error) as exc:  # past the header: the rest is unreadable
            raise UnreadableFileError(str(path), f"after line {reader.line_num}: {exc}") from None


def _reason(exc: Exception) -> str:
    """A stable reason for the summary: the error code or message without the value."""
    return exc.code if isinstance(exc, DomainError) else str(exc).split(":")[0]


def _row(row: dict[str, str], m: CsvMapping, where: str,
         baselines: set[str]) -> Iterator[SourceAssessment | Skipped]:
    patient = row[m.patient].strip()
    if not patient:
        yield Skipped(where, "no patient")
        return
    code = m.fixed_instrument or _BY_CODE.get(row[m.instrument or ""].strip())
    if code is None:
        yield Skipped(where, "not an instrument score")
        return
    administered: date | datetime
    if m.date is not None:
        administered = parse_date_or_datetime(row[m.date].strip(), m.date)
    else:
        offset = whole_number(row[m.day or ""])
        if offset is None:
            yield Skipped(where, "no date")
            return
        assert m.anchor is not None
        administered = m.anchor + timedelta(days=offset)
    if m.baseline is not None and patient not in baselines:
        baselines.add(patient)
        yield from _baseline(row[m.baseline], m, patient, code, f"{where} (baseline)")
    items = tuple(whole_number(row[c]) for c in m.items) if m.items else None
    total = whole_number(row[m.total]) if m.total else None
    if total is None and (items is None or all(v is None for v in items)):
        yield Skipped(where, "no score")
        return
    key = row[m.key].strip() if m.key else f"{patient}|{administered.isoformat()}|{code}"
    yield SourceAssessment(key=key, patient=patient, instrument=code, administered=administered,
                           items=items, total=total, location=where)


def _baseline(cell: str, m: CsvMapping, patient: str, code: str,
              where: str) -> Iterator[SourceAssessment | Skipped]:
    """The patient's baseline at the anchor; an unreadable one is skipped on its own (the row's
    score still counts)."""
    try:
        baseline = whole_number(cell)
    except ValueError as exc:
        yield Skipped(where, f"unreadable value: {_reason(exc)}")
        return
    if baseline is not None and m.anchor is not None:
        yield SourceAssessment(key=f"{patient}|baseline|{code}", patient=patient,
                               instrument=code, administered=m.anchor, total=baseline,
                               location=where)
