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

from eventsourcing.application import Application
from eventsourcing.domain import TAggregateID
from eventsourcing.utils import Environment, EnvType


class ExplicitEnvironment(Application[TAggregateID]):
    """Subclass instead of ``Application``: the environment is the class
    attribute ``env`` updated with the constructor's ``env`` argument, nothing else. An empty
    ``env`` therefore means the library's defaults (the in-memory ``eventsourcing.popo`` store),
    whatever the process environment holds."""

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The application's environment: ``type(self).env``, ``IS_SNAPSHOTTING_ENABLED=y``
        when the class enables snapshotting, then ``env``; ``os.environ`` is not consulted."""
        given = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            given["IS_SNAPSHOTTING_ENABLED"] = "y"
        given.update(env or {})
        return Environment(name, given)
