"""The library's PostgreSQL infrastructure factory plus the libpq options it does not pass on.

``eventsourcing.postgres.PostgresDatastore`` hands psycopg a fixed set of connection keywords
(dbname, host, port, user, password). libpq itself accepts a comma-separated ``host`` (and
``port``) list and tries the hosts in turn; ``target_session_attrs=read-write`` makes it skip a
standby, so after a failover the next connection reaches the promoted primary. TCP keepalives
make a connection to a vanished host (a failed-over primary, a dropped NAT entry) fail within
seconds instead of the kernel's two hours. ``Factory`` reads these from its environment
(``POSTGRES_TARGET_SESSION_ATTRS``, ``POSTGRES_KEEPALIVES_IDLE``/``_INTERVAL``/``_COUNT``,
``POSTGRES_LIBPQ_CONNECT_TIMEOUT``, seconds) and adds them to the pool's keywords before the pool
opens (it opens on first use). ``PERSISTENCE_MODULE=application.postgres:Factory`` selects it;
its application recorder is the chained one of ``trust.chain``, the others the library's own.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType

from trust.chain import ChainedPostgresApplicationRecorder

TOPIC = "application.postgres:Factory"
# environment key -> libpq connection parameter (values are passed as given: libpq parses them)
LIBPQ_OPTIONS = {
    "POSTGRES_TARGET_SESSION_ATTRS": "target_session_attrs",
    "POSTGRES_KEEPALIVES_IDLE": "keepalives_idle",
    "POSTGRES_KEEPALIVES_INTERVAL": "keepalives_interval",
    "POSTGRES_KEEPALIVES_COUNT": "keepalives_count",
    "POSTGRES_LIBPQ_CONNECT_TIMEOUT": "connect_timeout",
    "POSTGRES_APPLICATION_NAME": "application_name",
}


class Factory(PostgresFactory):
    """``PostgresFactory`` whose connections also carry the libpq options of ``LIBPQ_OPTIONS``
    (keepalives switched on whenever one keepalive option is given), and whose application
    recorder writes the hash chain in the append's transaction (``trust.chain``, ADR 0022)."""

    application_recorder_class = ChainedPostgresApplicationRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict), "the library passes its keywords as a dict"
        kwargs.update(libpq_options(self.env))


def libpq_options(env: Environment) -> dict[str, Any]:
    """The extra libpq keywords that ``env`` sets (empty values are left out)."""
    options: dict[str, Any] = {param: value for key, param in LIBPQ_OPTIONS.items()
                               if (value := env.get(key))}
    if any(name.startswith("keepalives_") for name in options):
        options["keepalives"] = 1
    return options
