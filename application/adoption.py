"""Adoption of a criteria set for every open episode of a clinic (one use case over many
episodes; each episode's own adoption is ``OutcomesApplication.adopt_criteria``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.outcomes import OutcomesApplication
from domain.errors import EpisodeClosedError, UnstageableInstrumentError

# The ids of a clinic's open episodes (wired to the episodes read model, caught up first).
OpenEpisodes = Callable[[str], Iterable[UUID]]


@dataclass(frozen=True)
class SkippedEpisode:
    """An episode the adoption left as it was, with the error code why."""

    episode_id: UUID
    code: str


@dataclass(frozen=True)
class ClinicAdoption:
    """What adopting a set for a clinic did: episodes ``adopted`` (changed), ``unchanged``
    (already under that set), ``skipped`` (the set cannot stage it, or it closed meanwhile)."""

    clinic_id: str
    adopted: tuple[UUID, ...]
    unchanged: tuple[UUID, ...]
    skipped: tuple[SkippedEpisode, ...]


class ClinicAdoptions:
    """Adopts criteria for a clinic's open episodes, one episode (and one save) at a time."""

    def __init__(self, app: OutcomesApplication, open_episodes: OpenEpisodes) -> None:
        self.app, self.open_episodes = app, open_episodes

    def adopt(self, clinic_id: str, *, criteria: str, params: Mapping[str, Any] | None,
              reason: str, recorded_by: str) -> ClinicAdoption:
        """Adopt ``criteria`` for every open episode of ``clinic_id``. Raises the application's
        errors for an unknown set or invalid parameters before any episode is touched."""
        self.app.criteria_set(criteria, params)
        adopted: list[UUID] = []
        unchanged: list[UUID] = []
        skipped: list[SkippedEpisode] = []
        for episode_id in self.open_episodes(clinic_id):
            try:
                result = self.app.adopt_criteria(episode_id, criteria=criteria, params=params,
                                                 reason=reason, recorded_by=recorded_by)
            except (UnstageableInstrumentError, EpisodeClosedError) as exc:
                # one episode the set cannot apply to must not stop (and half-apply) the rest
                skipped.append(SkippedEpisode(episode_id, exc.code))
                continue
            (unchanged if result.replayed else adopted).append(episode_id)
        return ClinicAdoption(clinic_id, tuple(adopted), tuple(unchanged), tuple(skipped))
