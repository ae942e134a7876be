"""The commands of a batch (``OutcomesApplication.record_batch``): several episodes, several
commands each, saved in one transaction (ADR 0026).

A batch is a sequence of ``EpisodePlan``: an episode id, what to open it with when it is not
stored yet, and a function that, given the episode as loaded (or just opened), lists its steps:
``RecordStep`` (``record_assessment``), ``VoidStep`` (``void_assessment``) or any other value, a
note of the caller's that is handed back as it is (an importer's "duplicate", say). The function
is called again on fresh state when the batch is retried after a lost race, so it must depend on
nothing but the episode it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from domain.episode import Episode
from domain.errors import DomainError


@dataclass(frozen=True)
class RecordStep:
    """``record_assessment``'s arguments (same meanings, same errors)."""

    assessment_id: str
    instrument: str
    administered: date | datetime
    recorded_by: str
    items: Sequence[int | None] | None = None
    total: int | None = None
    source: dict[str, Any] | None = None


@dataclass(frozen=True)
class VoidStep:
    """``void_assessment``'s arguments. ``fatal``: an error of this step ends the batch (what
    came before it is saved, then the error is raised) instead of being handed back."""

    assessment_id: str
    reason: str
    recorded_by: str
    fatal: bool = False


@dataclass(frozen=True)
class EpisodePlan:
    """One episode of a batch. ``opening``: ``open_episode``'s keyword arguments (without
    ``episode_id``), used when no episode ``episode_id`` is stored; ``steps(episode)``: the
    steps to run on the episode as loaded or opened (see the module's docstring)."""

    episode_id: UUID
    opening: Mapping[str, Any]
    steps: Callable[[Episode], Sequence[Any]]


@dataclass
class PlanOutcome:
    """What a batch did to one episode. ``error``: the episode could not be loaded or opened
    (no step ran); ``opened``: it was opened by this batch; ``results``: one per step, in
    order: a ``CommandResult`` (a replayed record carries no decisions), the ``DomainError``
    the step raised (it stored nothing), or the caller's note as it was given."""

    episode_id: UUID
    opened: bool = False
    error: DomainError | None = None
    results: list[Any] = field(default_factory=list)
