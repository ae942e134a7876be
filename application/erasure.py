"""Erasure of one patient by crypto-shredding (GDPR Art. 17; ADR 0023).

Events are never edited or deleted. ``erase_patient`` destroys the patient's data keys in the
outcomes store's key table (``trust.keys``), so every event encrypted with them reads as
``trust.cipher.ErasedEvent``; it appends an ``ErasureCompleted`` record (key ids, episode ids,
who, why, when; no patient_ref) that the read models handle by dropping the episodes (a rebuild
gives the same answers), drops the episodes from the shadow runs' results, and appends one JSON
line to the erasure log (mode 0600), which ``reapply_erasure_log`` replays after a restore of an
older backup. Order: log line, keys destroyed, record appended, results dropped: each step is
idempotent, so re-applying the log completes an erasure that stopped half-way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.episode import Episode
from domain.erasure import Erasure, ErasureCompleted
from trust.cipher import KeyedMapper, is_encrypted
from trust.files import append_private

if TYPE_CHECKING:
    from application.outcomes import OutcomesApplication
    from bootstrap import Services, Settings


class ErasureRefused(Exception):
    """Nothing can be shredded: the store has no master key (OUTCOMES_CIPHER_KEY unset)."""


class UnknownPatientError(LookupError):
    """No episode and no key of this patient_ref in the store."""


@dataclass(frozen=True)
class ErasureResult:
    """What one erasure did. ``erasure_id``: the ErasureCompleted record's aggregate id;
    ``key_ids``/``episode_ids``: the keys destroyed and episodes erased (sorted); ``destroyed``:
    keys destroyed by this call (0 when they already were); ``position``: the record's global
    position, None when it was already stored; ``already_erased``: nothing was left to erase;
    ``readable_events``: the patient's events stored before encryption was on, which stay
    readable (they cannot be shredded)."""

    erasure_id: UUID | None
    key_ids: tuple[str, ...]
    episode_ids: tuple[str, ...]
    destroyed: int
    position: int | None
    already_erased: bool = False
    readable_events: int = 0


def _mapper(app: OutcomesApplication) -> KeyedMapper:
    if not isinstance(app.mapper, KeyedMapper):
        raise ErasureRefused("OUTCOMES_CIPHER_KEY is not set: events are not encrypted, there "
                             "is no key to destroy (nothing to shred)")
    return app.mapper


def erased_episodes(app: OutcomesApplication) -> set[str]:
    """Every episode id named by an ErasureCompleted record of the store."""
    found: set[str] = set()
    for notification in app.notifications(ErasureCompleted.TOPIC):
        event = app.mapper.to_domain_event(notification)
        found.update(getattr(event, "episode_ids", []))
    return found


def _patient_episodes(app: OutcomesApplication, patient_ref: str) -> set[str]:
    """Episodes whose readable Opened names the patient (plaintext or a live key)."""
    found = set()
    for notification in app.notifications(Episode.Opened.TOPIC):
        event = app.mapper.to_domain_event(notification)
        if getattr(event, "patient_ref", None) == patient_ref:
            found.add(str(notification.originator_id))
    return found


def _readable_events(app: OutcomesApplication, episode_ids: set[str]) -> int:
    return sum(1 for episode_id in episode_ids
               for stored in app.recorder.select_events(UUID(episode_id))
               if not is_encrypted(stored.state))


def erase_patient(services: Services, patient_ref: str, reason: str, erased_by: str, *,
                  erasure_log: Path | None = None,
                  now: datetime | None = None) -> ErasureResult:
    """Erase one patient (see the module's docstring). ``erasure_log``: the log file (the CLI
    passes ``Settings.erasure_log_path()``; None writes no line). Raises ErasureRefused without
    a master key, UnknownPatientError for a patient_ref the store does not know. A patient with
    nothing left to erase gives ``already_erased``. A later episode of the same patient_ref
    gets a new key."""
    app = services.app
    mapper = _mapper(app)
    keys = mapper.keys
    known = keys.patient_keys(patient_ref)
    live = [key_id for key_id, erased_at in known if erased_at is None]
    done = erased_episodes(app)
    episodes = (set(keys.episodes_of(live)) | _patient_episodes(app, patient_ref)) - done
    if not known and not episodes:
        raise UnknownPatientError("no episode of this patient_ref in the store")
    if not episodes and not live:
        return ErasureResult(None, (), (), 0, None, already_erased=True)
    unlinked = [e for e in sorted(episodes) if keys.key_for_episode(e) is None]
    if unlinked:  # opened before encryption was on: mark them with a key that is erased now
        stand_in = live[-1] if live else keys.new_patient_key(patient_ref)
        keys.link_episodes(unlinked, stand_in)
        live = sorted({*live, stand_in})
    moment = now or datetime.now(UTC)
    erasure = Erasure.complete(key_ids=live, episode_ids=sorted(episodes), erased_by=erased_by,
                               reason=reason, erased_at=moment,
                               readable_events=_readable_events(app, episodes))
    entry = {"erasure_id": str(erasure.id), "erased_at": moment.isoformat(),
             "erased_by": erased_by, "reason": reason, "key_ids": erasure.key_ids,
             "episode_ids": erasure.episode_ids, "readable_events": erasure.readable_events}
    if erasure_log is not None:
        append_log_line(erasure_log, entry)
    return _apply(services, erasure, entry)


def _apply(services: Services, erasure: Erasure | None, entry: dict[str, Any]) -> ErasureResult:
    """Destroy the keys, append the record unless stored, drop the shadow-run results."""
    app = services.app
    mapper = _mapper(app)
    destroyed = mapper.keys.erase(entry["key_ids"],
                                  at=datetime.fromisoformat(entry["erased_at"]))
    mapper.forget(entry["key_ids"])
    erasure_id = UUID(entry["erasure_id"])
    position = None
    if erasure_id not in app.repository:
        if erasure is None:
            erasure = Erasure.complete(
                key_ids=entry["key_ids"], episode_ids=entry["episode_ids"],
                erased_by=entry["erased_by"], reason=entry["reason"],
                erased_at=datetime.fromisoformat(entry["erased_at"]),
                readable_events=entry.get("readable_events", 0))
        position = app.save(erasure)[-1].notification.id
    services.rescorings.drop_episodes(entry["episode_ids"])
    return ErasureResult(erasure_id, tuple(entry["key_ids"]), tuple(entry["episode_ids"]),
                         len(destroyed), position,
                         readable_events=entry.get("readable_events", 0))


def append_log_line(path: Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` as one JSON line to the erasure log (created mode 0600 in a folder
    created mode 0700), flushed to disk before returning."""
    append_private(path, (json.dumps(entry, sort_keys=True) + "\n").encode())


def read_log(path: Path) -> list[dict[str, Any]]:
    """The erasure log's entries in order ([] when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reapply_erasure_log(settings: Settings) -> list[ErasureResult]:
    """Re-apply every erasure of the log ``settings.erasure_log_path()`` to the configured
    store (after a restore of a backup taken before some erasures): the keys it names are
    destroyed again, missing ErasureCompleted records appended, the shadow-run results dropped.
    Returns one result per line (``destroyed`` 0 and ``position`` None where nothing was left
    to do). An empty or missing log does nothing. Raises ErasureRefused when the log has
    entries but the store has no master key."""
    from bootstrap import build

    entries = read_log(settings.erasure_log_path())
    if not entries:
        return []
    services = build(settings)
    try:
        return [_apply(services, None, entry) for entry in entries]
    finally:
        services.close()


def result_json(result: ErasureResult) -> dict[str, Any]:
    """The result as JSON data (ids as strings)."""
    data = asdict(result)
    data["erasure_id"] = str(result.erasure_id) if result.erasure_id else None
    data["key_ids"], data["episode_ids"] = list(result.key_ids), list(result.episode_ids)
    return data
