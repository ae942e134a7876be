"""Domain errors: one class per failure a caller can act on.

Messages carry ids, codes and field names, never personal data (no ``patient_ref``, no free text).
The API maps each class to an HTTP status in one table (``api/problems.py``); the CLI prints them.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``code`` is a stable machine-readable name, ``field`` the offending input, if any."""

    code = "domain-error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(DomainError):
    """Input that can never be accepted (HTTP 422)."""

    code = "invalid-input"


class UnknownInstrumentError(InvalidInputError):
    code = "unknown-instrument"


class ItemCountError(InvalidInputError):
    code = "item-count"


class ItemOutOfRangeError(InvalidInputError):
    code = "item-out-of-range"


class TotalOutOfRangeError(InvalidInputError):
    code = "total-out-of-range"


class MissingScoreError(InvalidInputError):
    code = "missing-score"


class NaiveDatetimeError(InvalidInputError):
    code = "naive-datetime"


class FutureDateError(InvalidInputError):
    code = "future-date"


class UnknownCriteriaError(InvalidInputError):
    code = "unknown-criteria"


class InvalidCriteriaParameterError(InvalidInputError):
    code = "invalid-criteria-parameter"


class UnknownRulePackError(InvalidInputError):
    """A rule pack id that is neither a built-in nor a variant of one (ADR 0030)."""

    code = "unknown-rule-pack"


class InvalidRulePackParameterError(InvalidInputError):
    """A rule pack parameter that is unknown, of the wrong type or out of range; ``field`` names it."""

    code = "invalid-rule-pack-parameter"


class UnstageableInstrumentError(InvalidInputError):
    code = "unstageable-instrument"


class ConflictError(DomainError):
    """The input is well formed but clashes with the episode's state (HTTP 409)."""

    code = "conflict"


class EpisodeClosedError(ConflictError):
    code = "episode-closed"


class IdempotencyConflictError(ConflictError):
    code = "idempotency-conflict"


class VersionConflictError(ConflictError):
    code = "version-conflict"


class AssessmentAlreadyVoidedError(ConflictError):
    code = "assessment-already-voided"


class AlertStateError(ConflictError):
    """An alert is already in the state a command would move it to (acknowledging an
    acknowledged or resolved alert, resolving a resolved one; HTTP 409)."""

    code = "alert-state"


class NotFoundError(DomainError):
    """A referenced episode or assessment does not exist (HTTP 404)."""

    code = "not-found"


class EpisodeNotFoundError(NotFoundError):
    code = "episode-not-found"


class AssessmentNotFoundError(NotFoundError):
    code = "assessment-not-found"


class AlertNotFoundError(NotFoundError):
    """No alert with that id on the episode (HTTP 404)."""

    code = "alert-not-found"
