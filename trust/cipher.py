"""The Mapper that encrypts each event's state with its patient's data key (crypto-shredding).

Installed by ``application.environment.ExplicitEnvironment.construct_mapper`` when the
environment carries ``LEDGER_MASTER_KEY`` (``bootstrap.Settings.eventsourcing_env`` passes the
OUTCOMES_CIPHER_KEY setting; not the library's CIPHER_TOPIC/CIPHER_KEY, whose one key for a whole
store could not be destroyed per patient).

Stored state = ``HEADER`` (``\\x00OLK`` + version byte 1) + the 16-byte key id + the output of
``eventsourcing.cryptography.AESCipher`` (AES-256-GCM: 12-byte nonce, 16-byte tag, ciphertext)
over the library's JSON state. Episode events use their patient's data key (``Opened`` carries
patient_ref; later events find the key through the episode id); every other aggregate (custom
criteria, re-scoring runs, access records, erasure records) the store's system key. State that
does not start with the header is an event stored before encryption was on: decoded as it is.
An event whose key was destroyed decodes to an ``ErasedEvent``; decoding never raises for it.
"""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import Environment

from trust.keys import KeyErased, KeyTable

MASTER_KEY_ENV = "LEDGER_MASTER_KEY"  # the environment key (base64 of 32 bytes)
HEADER = b"\x00OLK\x01"
KEY_ID_BYTES = 16
EPISODE_TOPICS = "outcome-ledger:Episode."
OPENED_TOPIC = "outcome-ledger:Episode.Opened"


class EventErased(LookupError):
    """An aggregate was rebuilt from an event whose key was destroyed (the application turns
    this into its not-found error, e.g. EpisodeNotFoundError)."""


@dataclass(frozen=True)
class ErasedEvent:
    """What an event reads as once its data key was destroyed: the envelope the store keeps in
    clear (originator id and version, topic) and nothing of its state; ``timestamp`` is None
    (it was encrypted with the state). Read models skip it; an aggregate cannot be built from
    it (``mutate`` raises EventErased)."""

    originator_id: UUID
    originator_version: int
    topic: str
    key_id: str
    timestamp: datetime | None = None

    def mutate(self, aggregate: Any) -> Any:
        raise EventErased(f"event {self.originator_version} of {self.originator_id} is erased")


def is_encrypted(state: bytes) -> bool:
    """Whether stored ``state`` was written by this mapper (starts with ``HEADER``)."""
    return bytes(state[: len(HEADER)]) == HEADER


def key_id_of(state: bytes) -> str | None:
    """The key id (hex) named by an encrypted state's header, None for a plaintext state."""
    if not is_encrypted(state):
        return None
    return bytes(state[len(HEADER): len(HEADER) + KEY_ID_BYTES]).hex()


class KeyedMapper(Mapper[UUID]):
    """``Mapper`` with per-patient AES-GCM encryption (see the module's docstring). ``keys``:
    the store's KeyTable. ``recorder`` (set once the application has one) lets a later event of
    an episode opened before encryption was on find its patient's key from the stored Opened."""

    def __init__(self, transcoder: Transcoder, keys: KeyTable) -> None:
        super().__init__(transcoder=transcoder)
        self.keys = keys
        self.recorder: Any = None
        self._ciphers: dict[str, AESCipher] = {}

    def _cipher(self, key_id: str) -> AESCipher:
        key = self.keys.data_key(key_id)  # raises KeyErased; checks for erasures elsewhere
        cipher = self._ciphers.get(key_id)
        if cipher is None or cipher.key != key:
            cipher = AESCipher(Environment("keys", {"CIPHER_KEY": b64encode(key).decode()}))
            self._ciphers[key_id] = cipher
        return cipher

    def forget(self, key_ids: list[str]) -> None:
        """Drop the ciphers of destroyed keys (erasure in this process)."""
        for key_id in key_ids:
            self._ciphers.pop(key_id, None)

    def _key_id_for(self, topic: str, event: Any) -> str:
        if not topic.startswith(EPISODE_TOPICS):
            return self.keys.system_key()
        episode_id = str(event.originator_id)
        if topic == OPENED_TOPIC:
            return self.keys.key_for_new_episode(event.patient_ref, episode_id)
        known = self.keys.key_for_episode(episode_id)
        if known is not None:
            return known
        patient_ref = self._plaintext_patient(event.originator_id)
        if patient_ref is None:
            return self.keys.system_key()
        return self.keys.key_for_new_episode(patient_ref, episode_id)

    def _plaintext_patient(self, episode_id: UUID) -> str | None:
        """patient_ref from the episode's stored Opened (plaintext: before encryption)."""
        if self.recorder is None:
            return None
        found = self.recorder.select_events(episode_id, lte=1)
        if not found or found[0].topic != OPENED_TOPIC or is_encrypted(found[0].state):
            return None
        opened = super().to_domain_event(found[0])
        return getattr(opened, "patient_ref", None)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """The event as stored: header, key id, AES-GCM of the library's JSON state. The key
        (new patient: a new key row) is committed before this returns. Raises EventErased for
        an event of an erased episode."""
        plain = super().to_stored_event(domain_event)
        key_id = self._key_id_for(plain.topic, domain_event)
        try:
            cipher = self._cipher(key_id)
        except KeyErased:  # an erased episode (another process): nothing new under its key
            raise EventErased(f"episode {domain_event.originator_id} is erased") from None
        state = HEADER + bytes.fromhex(key_id) + cipher.encrypt(plain.state)
        return StoredEvent(originator_id=plain.originator_id,
                           originator_version=plain.originator_version, topic=plain.topic,
                           state=state)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """The domain event; an ``ErasedEvent`` when its key was destroyed; a plaintext state
        (stored before encryption) as the library decodes it."""
        state = stored_event.state
        if not is_encrypted(state):
            return super().to_domain_event(stored_event)
        key_id = bytes(state[len(HEADER): len(HEADER) + KEY_ID_BYTES]).hex()
        try:
            cipher = self._cipher(key_id)
        except KeyErased:
            return ErasedEvent(UUID(str(stored_event.originator_id)),
                               stored_event.originator_version, stored_event.topic, key_id)
        plain = cipher.decrypt(bytes(state[len(HEADER) + KEY_ID_BYTES:]))
        return super().to_domain_event(StoredEvent(
            originator_id=stored_event.originator_id,
            originator_version=stored_event.originator_version, topic=stored_event.topic,
            state=plain))
