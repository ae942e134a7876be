"""An ``eventsourcing.Application`` configured only by the environment it is given.

The library builds an application's environment from the class attribute ``env``, then
``os.environ``, then the constructor's ``env`` argument, and looks every key up first with the
application's name as prefix (``OUTCOMES_PERSISTENCE_MODULE`` before ``PERSISTENCE_MODULE``). A
variable left in the process environment could therefore move the event store (into memory:
every write lost at restart), compress or encrypt events, or switch on database functions, while
the service's own settings said otherwise. ``ExplicitEnvironment`` overrides the library's hook
for this, ``Application.construct_env``, so that ``os.environ`` is never read: the settings
(``bootstrap.Settings``) are the one reader of configuration.
"""

from __future__ import annotations

from base64 import b64decode
from typing import cast

from eventsourcing.application import Application
from eventsourcing.domain import TAggregateID
from eventsourcing.persistence import EventStore, InfrastructureFactory, Mapper, Transcoder
from eventsourcing.utils import Environment, EnvType, strtobool

from application.transcoder import FastJSONTranscoder
from trust.cipher import MASTER_KEY_ENV, KeyedMapper
from trust.keys import KeyTable


class ExplicitEnvironment(Application[TAggregateID]):
    """Subclass instead of ``Application``: the environment is the class
    attribute ``env`` updated with the constructor's ``env`` argument, nothing else. An empty
    ``env`` therefore means the library's defaults (the in-memory ``eventsourcing.popo`` store),
    whatever the process environment holds."""

    def __init__(self, env: EnvType | None = None) -> None:
        """The library's constructor; when it fails part way (e.g. a wrong master key refused
        by the key table, after the factory opened its connection pool), the factory is closed
        before the error propagates instead of being left to the garbage collector."""
        try:
            super().__init__(env)
        except BaseException:
            factory = getattr(self, "factory", None)
            if factory is not None:
                factory.close()
            raise

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The application's environment: ``type(self).env``, ``IS_SNAPSHOTTING_ENABLED=y``
        when the class enables snapshotting, then ``env``; ``os.environ`` is not consulted."""
        given = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            given["IS_SNAPSHOTTING_ENABLED"] = "y"
        given.update(env or {})
        return Environment(name, given)

    def construct_transcoder(self) -> Transcoder:
        """``application.transcoder.FastJSONTranscoder`` (msgspec; the library's JSON byte for
        byte, ADR 0027) with the application's transcodings, unless the environment names
        another with the library's ``TRANSCODER_TOPIC`` (the tests and benchmarks name the
        library's ``eventsourcing.persistence:JSONTranscoder`` to compare)."""
        if self.env.get(InfrastructureFactory.TRANSCODER_TOPIC):
            return super().construct_transcoder()
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Mapper[TAggregateID]:
        """The library's mapper; with ``LEDGER_MASTER_KEY`` in the environment (base64 of the
        32-byte master key, from ``Settings.eventsourcing_env``) the per-patient encrypting
        ``trust.cipher.KeyedMapper`` over this store's ``trust.keys.KeyTable`` instead (ADR
        0023). Raises KeyTableRefused (wrong master key; PostgreSQL key table missing)."""
        mapper = super().construct_mapper()
        master = self.env.get(MASTER_KEY_ENV)
        if not master:
            return mapper
        datastore = getattr(self.factory, "datastore", None)
        kind = ("memory" if datastore is None
                else "postgres" if type(datastore).__module__.endswith("postgres") else "sqlite")
        create = kind != "postgres" or strtobool(self.env.get("CREATE_TABLE") or "y")
        keys = KeyTable.open(self.name, b64decode(master), datastore=datastore, kind=kind,
                             create=create)
        return cast(Mapper[TAggregateID], KeyedMapper(mapper.transcoder, keys))

    def construct_event_store(self) -> EventStore[TAggregateID]:
        """The library's event store; a KeyedMapper is given the recorder (it reads an
        episode's plaintext Opened to find the patient's key)."""
        if isinstance(self.mapper, KeyedMapper):
            self.mapper.recorder = self.recorder
        return super().construct_event_store()

    def close(self) -> None:
        if isinstance(getattr(self, "mapper", None), KeyedMapper):
            self.mapper.keys.close()  # type: ignore[attr-defined]
        super().close()
