"""What a source reader yields: assessments found, resources skipped (with a reason), errors.

Readers know formats, not the ledger: they never pseudonymise, open episodes or score. The
pipeline (``importers.pipeline``) turns ``SourceAssessment`` records into application commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class SourceAssessment:
    """One assessment as a source holds it, before pseudonymisation.

    ``key``: the business key, the source system plus the resource's identifier or full URL
    (never ``resource.id`` alone: some sources reuse one id); the same key always means the same
    assessment, so importing a file twice adds nothing. ``patient``: the source's patient
    reference (hashed before it reaches the ledger). ``administered``: the clinical time (a date,
    or a timezone-aware datetime). ``items`` (None = missing) and ``total`` in points as the source
    gave them. ``recorded_at``: when the source recorded it (``issued``/``meta.lastUpdated``),
    never the clinical time. ``flags``: data-quality findings of the reader (e.g.
    ``ANSWER_CODE_MISMATCH``). ``voided``: the source marks it entered in error / cancelled.
    ``location``: file and resource, for messages (no patient data).
    """

    key: str
    patient: str
    instrument: str
    administered: date | datetime
    items: tuple[int | None, ...] | None = None
    total: int | None = None
    recorded_at: datetime | None = None
    flags: tuple[str, ...] = ()
    voided: bool = False
    location: str = ""


@dataclass(frozen=True)
class Skipped:
    """A resource or row deliberately not imported: ``reason`` is a short stable phrase
    ("not an assessment resource", "unknown instrument", ...), ``location`` file and resource."""

    location: str
    reason: str


class UnreadableFileError(Exception):
    """A file that cannot be read or parsed at all (the import exits 1)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


ANSWER_CODE_MISMATCH = "ANSWER_CODE_MISMATCH"
