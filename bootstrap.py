"""Composition root: settings -> the eventsourcing environment, the read models, logging.

Used by the API (``api.create_app``), the CLI and the benchmarks; nothing happens at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sys
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import structlog
from eventsourcing.persistence import Recorder
from eventsourcing.popo import POPORecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteRecorder
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.access_log import AccessLog
from application.adoption import ClinicAdoptions
from application.environment import ExplicitEnvironment
from application.outcomes import Clock, OutcomesApplication, utc_now
from application.rescoring import RescoringLog, ShadowRuns
from application.signals import ClinicSignalChoices
from projections.rescorings import RescoringStore
from projections.runner import ReadModels
from projections.storage import ViewStore, view_store_for
from trust.chain import POPO_FACTORY_TOPIC, SQLITE_RECORDER_TOPIC
from trust.files import tighten_store, write_new_private

# Schema names come from the settings and are validated here, then quoted by psycopg's sql module.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
STORE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
POSTGRES_FACTORY = "application.postgres:Factory"
MIN_SESSION_SECRET = 32  # characters of the pages' session secret


def _base_url(value: str) -> str:
    """``ui_base_url`` without its trailing ``/``. Raises ``ValueError`` unless it is an
    absolute https URL (http only for a loopback host) without query or fragment."""
    from urllib.parse import urlsplit
    parts = urlsplit(value.strip())
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or (
            parts.fragment) or (parts.scheme == "http" and not loopback):
        raise ValueError("OUTCOMES_UI_BASE_URL must be the service's external https URL (http "
                         "only on localhost), without query or fragment, e.g. "
                         "https://outcomes.example.org")
    return value.strip().rstrip("/")


class Settings(BaseSettings):
    """Every setting, from environment variables prefixed ``OUTCOMES_`` (e.g.
    ``OUTCOMES_SQLITE_PATH``); defaults run the service on SQLite under ``./var/``.

    The one reader of configuration: the event stores get their ``eventsourcing`` environment
    from ``eventsourcing_env`` only (their applications never read ``os.environ``, see
    ``application.environment``), so the library's own variables (``PERSISTENCE_MODULE``,
    ``OUTCOMES_PERSISTENCE_MODULE``, ``CIPHER_TOPIC``, ...) change nothing."""

    model_config = SettingsConfigDict(env_prefix="OUTCOMES_", extra="ignore")

    # Where the event stores live: a SQLite file (the embedded default), a PostgreSQL database,
    # or memory (lost at exit). ``persistence`` is the older name, still read (store wins when
    # both are set); after validation both hold the same value.
    store: Literal["sqlite", "postgres", "memory"] = "sqlite"
    persistence: Literal["sqlite", "postgres", "memory"] | None = None
    # PostgreSQL (``store=postgres``; docs/deployment.md). ``postgres_host`` may list several
    # hosts (libpq multi-host, e.g. ``pg-a,pg-b``; ``postgres_port`` one port or one per host):
    # connections then ask for ``target_session_attrs=read-write``, so they reach the primary.
    postgres_host: str = "127.0.0.1"
    postgres_port: str = "5432"
    postgres_dbname: str = "outcomes"
    postgres_user: str = "outcomes"
    postgres_password: SecretStr | None = None
    postgres_pool_size: Annotated[int, Field(ge=1, le=100)] = 5  # at most, per store and process
    postgres_conn_max_age: Annotated[float, Field(gt=0)] = 3600  # seconds a connection is reused
    postgres_pre_ping: bool = True  # check a pooled connection before use (recovers after an outage)
    postgres_schema: str = "public"  # several ledgers in one database: one schema each
    # Seconds to wait for a pooled connection (and libpq's connect timeout, at least 2). The
    # library retries a statement 10 times, so a request meets an outage with 503 after
    # about 10 * (this + 0.2) seconds.
    postgres_connect_timeout: Annotated[int, Field(ge=1, le=300)] = 5
    # TCP keepalives (seconds idle before the first probe, seconds between probes, probes lost):
    # a connection to a host that vanished fails within ~idle + interval * count seconds.
    postgres_keepalives_idle: Annotated[int, Field(ge=1)] = 30
    postgres_keepalives_interval: Annotated[int, Field(ge=1)] = 10
    postgres_keepalives_count: Annotated[int, Field(ge=1)] = 3
    # Read models: "inline": the API process catches up the read model a request reads (one
    # process on SQLite or memory, as before); "runners": ``outcomes projections run`` processes
    # do, the API never catches up. "auto": inline on sqlite/memory with one worker, else runners.
    projections: Literal["auto", "inline", "runners"] = "auto"
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # API worker processes (``serve --workers``)
    # A read sending ``X-Min-Position`` waits at most this long (seconds) for its read model.
    min_position_timeout: Annotated[float, Field(gt=0, le=30)] = 2.0
    projection_stall_s: Annotated[float, Field(gt=0)] = 60  # runner watchdog (projections run)
    sqlite_path: Path = Path("var/outcomes.sqlite")
    views_dir: Path | None = None  # default: <sqlite_path's folder>/views
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    catch_up_interval: float = 1.0  # seconds between background read-model catch-ups; 0 = off
    # Key of the HMAC that turns source patient ids into patient_ref (imports). Unset: a random
    # key is created once in <sqlite folder>/pseudonym.key (mode 600) and reused.
    pseudonym_key: SecretStr | None = None
    # Bearer-token authentication (api.auth). No issuer: development mode, loopback only, with a
    # local issuer whose key is <sqlite folder>/dev-issuer.key (``outcomes dev-token`` mints).
    # An issuer: production mode; then the audience and one of the JWKS URL or file are required.
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_url: str | None = None
    auth_jwks_file: Path | None = None
    auth_roles_claim: str = "roles"  # dotted paths allowed: realm_access.roles (Keycloak)
    auth_clinics_claim: str = "clinics"  # a list of clinic ids
    auth_leeway: float = Field(default=30, ge=0, le=300)  # seconds of clock skew on exp/nbf/iat
    # The pages' OpenID Connect sign-in (api.ui.oidc, ADR 0035), with an issuer only: the client
    # registered at the issuer (no secret: a public client, PKCE only), the secret every worker
    # and host shares to encrypt the session cookie (or a file holding it; required with a
    # client id; at least 32 characters), and the external URL of this service (redirect_uri
    # behind a proxy; default: the request's own URL).
    ui_client_id: str | None = None
    ui_client_secret: SecretStr | None = None
    ui_session_secret: SecretStr | None = None
    ui_session_secret_file: Path | None = None
    ui_base_url: str | None = None

    # Bounded resources (api.limits, api.serving; README "Limits"): body bytes (413), seconds for
    # a body (408) and for a request's headers (connection closed with 408), requests per identity
    # ("1000/second" by default, limits notation; "off": none), Host names answered (comma-separated; unset:
    # loopback names plus ``host``).
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    body_timeout: Annotated[float, Field(gt=0)] = 30.0
    header_timeout: Annotated[float, Field(gt=0)] = 10.0
    rate_limit: str = "1000/second"
    allowed_hosts: str | None = None
    # Signed checkpoints (trust.checkpoints, README "Checkpoints"): the folder they are written
    # to (default <sqlite folder>/checkpoints, mode 0700), the Ed25519 signing key (a PEM file,
    # default <sqlite folder>/checkpoint-signing.key, created mode 0600 on first use), and the
    # seconds between the checkpoints ``outcomes serve`` writes when a tree grew (0: none).
    checkpoint_dir: Path | None = None
    checkpoint_key_file: Path | None = None
    checkpoint_interval: Annotated[float, Field(ge=0)] = 3600
    # Encryption at rest (trust.keys, trust.cipher; ADR 0023). ``cipher_key``: the master key,
    # base64 of 32 random bytes (``outcomes keys generate`` prints one); unset, event state is
    # NOT encrypted at rest. ``new_cipher_key``: read only by ``outcomes keys rotate``.
    # ``erasure_log``: one JSON line per erasure (default <sqlite folder>/erasures.jsonl).
    cipher_key: SecretStr | None = None
    new_cipher_key: SecretStr | None = None
    erasure_log: Path | None = None
    # Alerts (ADR 0031): days without a scorable assessment after which an episode is overdue
    # (``outcomes alerts sweep``), and the seconds between the sweeps ``outcomes serve`` runs
    # (0: none).
    overdue_days: Annotated[int, Field(ge=1, le=365)] = 28
    overdue_sweep_interval: Annotated[float, Field(ge=0)] = 3600
    # Measurement-based care (ADR 0032): a safety alert (PHQ-9 item 9) left unacknowledged this
    # many hours is overdue: marked in the caseload and counted by /health's safety_overdue.
    safety_ack_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24

    @field_validator("postgres_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("a schema name is lower-case letters, digits and _, starting with "
                             "a letter or _, at most 40 characters")
        return value

    @model_validator(mode="after")
    def _store_alias(self) -> Settings:
        if self.persistence is not None and "store" not in self.model_fields_set:
            self.store = self.persistence
        self.persistence = self.store
        return self

    @model_validator(mode="after")
    def _ui_sign_in(self) -> Settings:
        """The pages' sign-in settings hang together (ValueError naming the setting)."""
        if self.ui_client_id is not None and self.auth_issuer is None:
            raise ValueError("OUTCOMES_UI_CLIENT_ID needs OUTCOMES_AUTH_ISSUER (the OpenID "
                             "Connect sign-in is the issuer's); unset it in development mode")
        if self.ui_session_secret is not None and self.ui_session_secret_file is not None:
            raise ValueError("set one of OUTCOMES_UI_SESSION_SECRET and "
                             "OUTCOMES_UI_SESSION_SECRET_FILE, not both")
        if self.ui_session_secret is not None and len(
                self.ui_session_secret.get_secret_value().strip()) < MIN_SESSION_SECRET:
            raise ValueError(f"OUTCOMES_UI_SESSION_SECRET must be at least {MIN_SESSION_SECRET} "
                             "characters (e.g. `python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'`)")
        if self.ui_client_id is not None and self.ui_session_secret is None and (
                self.ui_session_secret_file is None):
            raise ValueError("OUTCOMES_UI_CLIENT_ID needs OUTCOMES_UI_SESSION_SECRET (or "
                             "OUTCOMES_UI_SESSION_SECRET_FILE): the secret every worker and "
                             "host shares to encrypt the pages' session cookie")
        if self.ui_base_url is not None:
            self.ui_base_url = _base_url(self.ui_base_url)
        return self

    def ui_session_secret_value(self) -> bytes | None:
        """The pages' session secret (``ui_session_secret``, else the file's stripped text), or
        None when neither is set. Raises ``ValueError`` naming the setting for a missing,
        unreadable or too short file."""
        if self.ui_session_secret is not None:
            return self.ui_session_secret.get_secret_value().strip().encode()
        if self.ui_session_secret_file is None:
            return None
        try:
            text = self.ui_session_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"OUTCOMES_UI_SESSION_SECRET_FILE {self.ui_session_secret_file}: "
                             f"cannot be read ({exc.strerror})") from None
        if len(text) < MIN_SESSION_SECRET:
            raise ValueError(f"OUTCOMES_UI_SESSION_SECRET_FILE {self.ui_session_secret_file}: "
                             f"the secret must be at least {MIN_SESSION_SECRET} characters")
        return text.encode()

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        if value.strip().lower() != "off":
            from limits import parse
            parse(value)  # ValueError names the notation
        return value.strip()

    def eventsourcing_env(self, store: str = "outcomes", *,
                          create_table: bool = False) -> dict[str, str]:
        """The ``eventsourcing`` environment of one event store: ``"outcomes"`` (the write
        model), ``"rescoring-runs"`` (RescoringLog), ``"access-log"`` (AccessLog), or another
        name (benchmarks). SQLite: the file ``sqlite_path`` (outcomes) or ``<store>.sqlite``
        beside it, tables created when missing. PostgreSQL: the database and schema of the
        settings (tables ``<app name>_events``), database functions off, tables created only
        with ``create_table`` (``outcomes db init``). With ``cipher_key`` set, also
        ``LEDGER_MASTER_KEY`` (the master key, base64; the stores then encrypt, ADR 0023).
        Raises ValueError for a bad store name, StartupError for a malformed master key."""
        if not STORE_NAME.match(store):
            raise ValueError(f"store name {store!r}: lower-case letters, digits and -")
        env = self._store_env(store, create_table=create_table)
        master = self.master_key()
        if master is not None:  # the KeyedMapper's (trust.cipher); never logged
            env["LEDGER_MASTER_KEY"] = b64encode(master).decode()
        return env

    def master_key(self, *, new: bool = False) -> bytes | None:
        """The 32-byte master key from ``cipher_key`` (``new``: ``new_cipher_key``), None when
        unset. Raises StartupError (one line, no key material) when it is not base64 of 32
        bytes."""
        secret = self.new_cipher_key if new else self.cipher_key
        if secret is None or not secret.get_secret_value().strip():
            return None
        name = "OUTCOMES_NEW_CIPHER_KEY" if new else "OUTCOMES_CIPHER_KEY"
        try:
            key = b64decode(secret.get_secret_value().strip(), validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise StartupError(f"{name} must be the base64 of 32 random bytes (`outcomes keys "
                               "generate` prints one)")
        return key

    def erasure_log_path(self) -> Path:
        """Where erasures are logged (``erasure_log``, else ``<sqlite folder>/erasures.jsonl``)."""
        return self.erasure_log or self.sqlite_path.parent / "erasures.jsonl"

    def _store_env(self, store: str, *, create_table: bool) -> dict[str, str]:
        if self.store == "memory":
            return {"PERSISTENCE_MODULE": POPO_FACTORY_TOPIC}
        if self.store == "sqlite":
            path = (self.sqlite_path if store == "outcomes"
                    else self.sqlite_path.parent / f"{store}.sqlite")
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER_TOPIC,
                    "SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "10"}
        password = self.postgres_password.get_secret_value() if self.postgres_password else ""
        env = {
            "PERSISTENCE_MODULE": POSTGRES_FACTORY,
            "POSTGRES_DBNAME": self.postgres_dbname,
            "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": self.postgres_port,
            "POSTGRES_USER": self.postgres_user,
            "POSTGRES_PASSWORD": password,
            "POSTGRES_SCHEMA": self.postgres_schema,
            # one connection kept open per store and process, up to postgres_pool_size under
            # load (psycopg's pool closes the extra ones after 10 idle minutes): with five
            # runners and a few workers the server's default max_connections (100) suffices
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": str(self.postgres_pool_size - 1),
            "POSTGRES_CONN_MAX_AGE": f"{self.postgres_conn_max_age:g}",
            "POSTGRES_PRE_PING": "y" if self.postgres_pre_ping else "n",
            "POSTGRES_CONNECT_TIMEOUT": str(self.postgres_connect_timeout),
            "POSTGRES_LIBPQ_CONNECT_TIMEOUT": str(max(2, self.postgres_connect_timeout)),
            "POSTGRES_KEEPALIVES_IDLE": str(self.postgres_keepalives_idle),
            "POSTGRES_KEEPALIVES_INTERVAL": str(self.postgres_keepalives_interval),
            "POSTGRES_KEEPALIVES_COUNT": str(self.postgres_keepalives_count),
            "POSTGRES_APPLICATION_NAME": f"outcomes-{store}",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "CREATE_TABLE": "y" if create_table else "n",
        }
        if "," in self.postgres_host:
            env["POSTGRES_TARGET_SESSION_ATTRS"] = "read-write"
        return env

    def projection_mode(self) -> Literal["inline", "runners"]:
        """How the read models are kept current (the ``projections`` setting resolved): auto is
        inline for one worker on sqlite/memory, runners otherwise."""
        if self.projections != "auto":
            return self.projections
        return "inline" if self.store != "postgres" and self.workers == 1 else "runners"

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """Names in the environment (default ``os.environ``) that carry the ``OUTCOMES_`` prefix
        but name no setting (e.g. the library's ``OUTCOMES_PERSISTENCE_MODULE``): ignored, and
        logged at start-up so that a mistyped or library variable is not silently trusted."""
        known = {f"OUTCOMES_{name.upper()}" for name in cls.model_fields}
        known.add("OUTCOMES_TEST_POSTGRES_HOST")  # the test suite's cluster (tests/support)
        known.update({"OUTCOMES_TEST_POSTGRES_PORT", "OUTCOMES_TEST_POSTGRES_USER"})
        return sorted(n for n in (os.environ if environ is None else environ)
                      if n.upper().startswith("OUTCOMES_") and n.upper() not in known)

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonymisation key: the setting, else the key file (created on first use)."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if self.store == "memory":
            return secrets.token_bytes(32)
        path = self.sqlite_path.parent / "pseudonym.key"
        if not path.exists():  # mode 0600 in a 0700 folder; the first process's key wins
            write_new_private(path, secrets.token_hex(32).encode())
        return path.read_text().strip().encode()

    def allowed_host_names(self) -> list[str]:
        """The ``Host`` names the API answers for: ``allowed_hosts`` split on commas, else
        ``127.0.0.1``, ``localhost``, ``[::1]`` and ``host`` (bracketed when IPv6)."""
        if self.allowed_hosts is not None:
            return [name.strip() for name in self.allowed_hosts.split(",") if name.strip()]
        own = f"[{self.host}]" if ":" in self.host else self.host
        return list(dict.fromkeys(["127.0.0.1", "localhost", "[::1]", own]))

    def view_store(self) -> ViewStore:
        """Where the read models live (``projections.storage``): SQLite files in
        ``views_folder()`` (in-memory databases for ``persistence=memory``), or PostgreSQL."""
        return view_store_for(self)

    def checkpoint_folder(self) -> Path:
        """Where signed checkpoints are written (``checkpoint_dir``, else
        ``<sqlite_path's folder>/checkpoints``); not created here."""
        return self.checkpoint_dir or self.sqlite_path.parent / "checkpoints"

    def checkpoint_key_path(self) -> Path:
        """The Ed25519 checkpoint signing key's PEM file (``checkpoint_key_file``, else
        ``<sqlite_path's folder>/checkpoint-signing.key``)."""
        return self.checkpoint_key_file or self.sqlite_path.parent / "checkpoint-signing.key"

    def views_folder(self) -> Path | None:
        """Where the SQLite read models live (None: in memory)."""
        if self.store == "memory":
            return None
        return self.views_dir or self.sqlite_path.parent / "views"


@dataclass(frozen=True)
class StoreInUse:
    """What an event store really is, read from its recorder: ``kind`` is ``"sqlite"`` (a
    file), ``"memory"`` (lost when the process ends: the POPO recorder or an in-memory SQLite
    database) or the recorder's module for others (``"postgres"``); ``path`` is the SQLite
    file's absolute path, else None."""

    kind: str
    path: str | None

    @classmethod
    def of(cls, recorder: Recorder) -> StoreInUse:
        if isinstance(recorder, POPORecorder):
            return cls("memory", None)
        if isinstance(recorder, SQLiteRecorder):
            pool = recorder.datastore.pool
            if pool.is_sqlite_memory_mode:
                return cls("memory", None)
            return cls("sqlite", os.path.abspath(pool.db_name))
        if isinstance(recorder, PostgresApplicationRecorder):
            return cls("postgres", None)
        return cls(type(recorder).__module__.rpartition(".")[2], None)


@dataclass
class Services:
    """The write model, its read models, the shadow runs' log and results store, and the use
    cases over several aggregates, built and closed together."""

    app: OutcomesApplication
    read_models: ReadModels
    rescorings: RescoringStore
    runs: RescoringLog
    shadow_runs: ShadowRuns
    adoptions: ClinicAdoptions
    access_log: AccessLog  # its own event store (var/access-log.sqlite) and read model
    access_views: ReadModels

    @property
    def signals(self) -> ClinicSignalChoices:
        """The clinic-wide signal use cases (choose rule packs, fit and record a recovery curve),
        over the clinic's open episodes of the episodes read model (ADR 0033)."""
        return ClinicSignalChoices(self.app, self.read_models.open_episodes)

    @property
    def store(self) -> StoreInUse:
        """The write model's event store as its recorder says (what ``/health`` reports)."""
        return StoreInUse.of(self.app.recorder)

    def database_probe(self) -> Callable[[], None] | None:
        """On PostgreSQL, a check that the write model's database answers now (a new
        connection with the pool's libpq options, ``SELECT 1``, 1 s timeout; raises psycopg's
        OperationalError otherwise) for ``api.availability``; None on SQLite and in memory."""
        if self.store.kind != "postgres":
            return None
        import psycopg

        pool = self.app.recorder.datastore.pool  # type: ignore[attr-defined]
        options = {k: v for k, v in dict(pool.kwargs).items() if k != "row_factory"}

        def probe() -> None:
            with psycopg.connect(**{**options, "connect_timeout": 1}) as connection:
                connection.execute("SELECT 1")
        return probe

    def close(self) -> None:
        self.shadow_runs.close()
        self.access_views.close()
        self.access_log.close()
        self.read_models.close()
        self.rescorings.datastore.close()
        self.runs.close()
        self.app.close()


# The event stores: store name (Settings.eventsourcing_env) -> application class. On PostgreSQL
# each is the table ``<app name lower-case>_events`` in the settings' schema.
EVENT_STORES: dict[str, type[ExplicitEnvironment[UUID]]] = {
    "outcomes": OutcomesApplication, "rescoring-runs": RescoringLog, "access-log": AccessLog}


class StartupError(Exception):
    """The configured store cannot be served (one line naming what to do): another recorder
    than configured, database functions on, tables missing (``outcomes db init``)."""


def build(settings: Settings, *, clock: Clock = utc_now,
          create_tables: bool | None = None, rebuilding: bool = False) -> Services:
    """Open the event stores and the read models. SQLite and memory create their files and
    tables when missing; PostgreSQL creates none here unless ``create_tables`` (``init_store``
    does) and each store is checked first (``check_store``). ``rebuilding``: the read models
    are about to be rebuilt, so a refused one is logged as information, not an error. Raises
    StartupError when a check fails; the library's OperationalError when the database cannot
    be reached."""
    tighten_store(settings)  # SQLite: folder 0700, files 0600, an older store's modes tightened
    with key_refusals():
        app = OutcomesApplication(settings.eventsourcing_env(), clock=clock)
    opened: list[ExplicitEnvironment[UUID]] = [app]
    try:
        check_store(settings, app)
        with key_refusals():
            runs = RescoringLog(settings.eventsourcing_env("rescoring-runs"))
        opened.append(runs)
        check_store(settings, runs)
        with key_refusals():
            access_log = AccessLog(settings.eventsourcing_env("access-log"), clock=clock)
        opened.append(access_log)
        check_store(settings, access_log)
    except BaseException:
        for each in opened:
            each.close()
        raise
    # PostgreSQL: the tables exist (``init_store``); SQLite and memory create them when missing.
    create = settings.store != "postgres" if create_tables is None else create_tables
    views = settings.view_store()
    read_models = ReadModels.open(app, views, create=create, rebuilding=rebuilding)
    access_views = ReadModels.open(access_log, views, create=create, rebuilding=rebuilding)
    rescorings = (RescoringStore.on_postgres(settings.eventsourcing_env(),
                                             settings.postgres_schema, create=create)
                  if settings.store == "postgres" else RescoringStore(settings.views_folder()))
    return Services(app, read_models, rescorings, runs,
                    ShadowRuns(app, runs, rescorings, read_models),
                    ClinicAdoptions(app, read_models.open_episodes), access_log, access_views)


def check_store(settings: Settings, app: ExplicitEnvironment[UUID]) -> None:
    """Refuse an event store that is not the configured one: its recorder of another kind
    than ``settings.store``, database functions switched on (projections must not rely on them,
    ADR 0019), or (PostgreSQL) its events or snapshots table missing. Raises StartupError with
    one line."""
    kind = StoreInUse.of(app.recorder).kind
    if kind != settings.store:
        raise StartupError(f"the {app.name} event store is {kind}, but OUTCOMES_STORE is "
                           f"{settings.store}")
    if not isinstance(app.recorder, PostgresApplicationRecorder):
        return
    datastore = app.recorder.datastore
    if datastore.enable_db_functions:
        raise StartupError(f"the {app.name} event store has database functions on; they must be "
                           "off (POSTGRES_ENABLE_DB_FUNCTIONS=n)")
    tables = [app.recorder.events_table_name]
    if app.snapshots is not None:  # the write model's snapshots (ADR 0025)
        tables.append(app.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
    for table in tables:
        with datastore.transaction(commit=False) as curs:
            curs.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                         "AND table_name = %s", (datastore.schema, table))
            found = curs.fetchone() is not None
        if not found:
            raise StartupError(f"table {datastore.schema}.{table} does not exist: run "
                               "`outcomes db init` (with the same OUTCOMES_POSTGRES_* settings)")


def init_store(settings: Settings, *, rebuilding: bool = False) -> list[str]:
    """Create every table once (``outcomes db init``): on PostgreSQL the schema, the three event
    stores' tables (CREATE_TABLE=y), serialised across processes by an advisory lock; then the
    read models' tables; on SQLite the files and tables (what ``build`` creates). Idempotent.
    Returns what was initialised, for the command's output. ``rebuilding``: as for ``build``
    (``restore``). Raises the library's OperationalError when the database cannot be reached."""
    done: list[str] = []
    tighten_store(settings)
    lock = _init_lock(settings) if settings.store == "postgres" else None
    try:
        for name, app_class in EVENT_STORES.items():
            with key_refusals():
                app = app_class(settings.eventsourcing_env(name, create_table=True))
            try:
                check_store(settings, app)
                table = getattr(app.recorder, "events_table_name", None)
                done.append(f"event store {name}" + (
                    f" ({settings.postgres_schema}.{table})" if lock is not None else ""))
            finally:
                app.close()
        # the read models' and results' tables
        services = build(settings, create_tables=True, rebuilding=rebuilding)
        services.close()
        done.append("read models")
    finally:
        if lock is not None:
            lock.close()
    return done


def _init_lock(settings: Settings) -> Any:
    """A connection holding the session advisory lock of this schema's ``db init`` (a second
    ``db init`` waits for the first instead of racing it on CREATE TABLE), the schema created."""
    import psycopg
    from psycopg import sql

    password = settings.postgres_password.get_secret_value() if settings.postgres_password else ""
    params: dict[str, Any] = {
        "host": settings.postgres_host, "port": settings.postgres_port,
        "dbname": settings.postgres_dbname, "user": settings.postgres_user,
        "password": password, "connect_timeout": max(2, settings.postgres_connect_timeout)}
    if "," in settings.postgres_host:
        params["target_session_attrs"] = "read-write"
    conn = psycopg.connect(autocommit=True, **params)
    try:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))",
                     (f"outcomes-db-init:{settings.postgres_schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(settings.postgres_schema)))
    except BaseException:
        conn.close()
        raise
    return conn


def open_existing_store(settings: Settings) -> OutcomesApplication | None:
    """The write model alone, for commands that only read it (criteria sets): None when there
    is nothing to read (``store=memory``, or no SQLite file yet), so such a command never
    creates a store. Close it after use. Raises StartupError for a PostgreSQL store that is not
    initialised."""
    if settings.store == "memory" or (
            settings.store == "sqlite" and not settings.sqlite_path.exists()):
        return None
    with key_refusals():
        app = OutcomesApplication(settings.eventsourcing_env())
    try:
        check_store(settings, app)
    except BaseException:
        app.close()
        raise
    return app


@contextlib.contextmanager
def key_refusals() -> Iterator[None]:
    """Turn ``trust.keys.KeyTableRefused`` (a wrong master key, a PostgreSQL key table not
    initialised) raised while an event store opens into StartupError (same one line)."""
    from trust.keys import KeyTableRefused

    try:
        yield
    except KeyTableRefused as exc:
        raise StartupError(str(exc)) from None


# Keys a log line may carry: ids, codes, stages, positions, timings; never names or bodies.
LOG_KEYS = frozenset({
    "event", "level", "timestamp", "logger", "request_id", "episode_id", "method", "route",
    "status", "duration_ms", "user_id", "error_type", "problem", "position", "store",
    "host", "port", "stage", "location", "path", "ignored", "projections", "workers", "pid",
    "view", "reason", "lag", "count",
})


def configure_logging(settings: Settings) -> None:
    """structlog with contextvars: JSON lines when not on a terminal (or ``log_format=json``),
    console otherwise; ISO UTC timestamps; tracebacks without local variables."""
    json_lines = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_lines
        else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level.upper())),
        # One write per line (message and newline together): several worker processes share
        # stderr, and print() writes the newline separately, so their lines could interleave.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
