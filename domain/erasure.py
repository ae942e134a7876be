"""The record of a patient's erasure (crypto-shredding; GDPR Art. 17).

One ``Erasure`` aggregate per erasure, in the outcomes store. Its one event, ``ErasureCompleted``,
names the destroyed key ids and the erased episode ids, who erased and why, and when; never the
patient_ref. Read models drop the episodes on this event, so a rebuild gives the same answers.
The aggregate id is derived from the key ids (``Erasure.id_for``): re-applying an erasure (after a
restore) finds its record instead of appending a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

NAMESPACE = UUID("6f0d64a4-5d0e-4c63-9d6a-9e1f7a1c2e11")


class Erasure(Aggregate):
    """One erasure (append-only: no event after ``ErasureCompleted``)."""

    TOPIC = "outcome-ledger:Erasure"

    class Created(Aggregate.Created):  # unused; explicit topics are all-or-nothing
        TOPIC = "outcome-ledger:Erasure.Created"

    class ErasureCompleted(Aggregate.Created):
        TOPIC = "outcome-ledger:Erasure.ErasureCompleted"
        key_ids: list[str]
        episode_ids: list[str]
        erased_by: str
        reason: str
        erased_at: datetime
        readable_events: int

    def __init__(self, key_ids: list[str], episode_ids: list[str], erased_by: str, reason: str,
                 erased_at: datetime, readable_events: int) -> None:
        self.key_ids, self.episode_ids = list(key_ids), list(episode_ids)
        self.erased_by, self.reason, self.erased_at = erased_by, reason, erased_at
        self.readable_events = readable_events

    @staticmethod
    def id_for(key_ids: Sequence[str]) -> UUID:
        """The erasure's id: a UUIDv5 of the sorted key ids."""
        return uuid5(NAMESPACE, ",".join(sorted(key_ids)))

    @classmethod
    def complete(cls, *, key_ids: Sequence[str], episode_ids: Sequence[str], erased_by: str,
                 reason: str, erased_at: datetime, readable_events: int = 0) -> Erasure:
        """Record an erasure. ``readable_events``: the patient's events stored before
        encryption was on (they stay readable; events are never edited)."""
        return cls._create(cls.ErasureCompleted, id=cls.id_for(key_ids),
                           key_ids=sorted(key_ids), episode_ids=sorted(episode_ids),
                           erased_by=erased_by, reason=reason, erased_at=erased_at,
                           readable_events=readable_events)


ErasureCompleted = Erasure.ErasureCompleted
