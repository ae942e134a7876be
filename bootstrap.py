"""Composition root: settings -> the eventsourcing environment, the read models, logging.

Used by the API (``api.create_app``), the CLI and the benchmarks; nothing happens at import time.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import structlog
from eventsourcing.persistence import Recorder
from eventsourcing.popo import POPORecorder
from eventsourcing.sqlite import SQLiteRecorder
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.access_log import AccessLog
from application.adoption import ClinicAdoptions
from application.outcomes import Clock, OutcomesApplication, utc_now
from application.rescoring import RescoringLog, ShadowRuns
from projections.rescorings import RescoringStore
from projections.runner import ReadModels
from projections.storage import ViewStore, view_store_for


class Settings(BaseSettings):
    """Every setting, from environment variables prefixed ``OUTCOMES_`` (e.g.
    ``OUTCOMES_SQLITE_PATH``); defaults run the service on SQLite under ``./var/``.

    The one reader of configuration: the event stores get their ``eventsourcing`` environment
    from ``eventsourcing_env`` only (their applications never read ``os.environ``, see
    ``application.environment``), so the library's own variables (``PERSISTENCE_MODULE``,
    ``OUTCOMES_PERSISTENCE_MODULE``, ``CIPHER_TOPIC``, ...) change nothing."""

    model_config = SettingsConfigDict(env_prefix="OUTCOMES_", extra="ignore")

    persistence: Literal["sqlite", "memory"] = "sqlite"
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

    # Bounded resources (api.limits, api.serving; README "Limits"): body bytes (413), seconds for
    # a body (408) and for a request's headers (connection closed with 408), requests per identity
    # ("1000/second" by default, limits notation; "off": none), Host names answered (comma-separated; unset:
    # loopback names plus ``host``).
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    body_timeout: Annotated[float, Field(gt=0)] = 30.0
    header_timeout: Annotated[float, Field(gt=0)] = 10.0
    rate_limit: str = "1000/second"
    allowed_hosts: str | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        if value.strip().lower() != "off":
            from limits import parse
            parse(value)  # ValueError names the notation
        return value.strip()

    def eventsourcing_env(self, file_name: str | None = None) -> dict[str, str]:
        """The ``eventsourcing`` environment of the write model (or, with ``file_name``, of
        another event store beside it)."""
        if self.persistence == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        path = self.sqlite_path.parent / file_name if file_name else self.sqlite_path
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "10"}

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """Names in the environment (default ``os.environ``) that carry the ``OUTCOMES_`` prefix
        but name no setting (e.g. the library's ``OUTCOMES_PERSISTENCE_MODULE``): ignored, and
        logged at start-up so that a mistyped or library variable is not silently trusted."""
        known = {f"OUTCOMES_{name.upper()}" for name in cls.model_fields}
        return sorted(n for n in (os.environ if environ is None else environ)
                      if n.upper().startswith("OUTCOMES_") and n.upper() not in known)

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonymisation key: the setting, else the key file (created on first use)."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if self.persistence == "memory":
            return secrets.token_bytes(32)
        path = self.sqlite_path.parent / "pseudonym.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32))
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

    def views_folder(self) -> Path | None:
        if self.persistence == "memory":
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
    def store(self) -> StoreInUse:
        """The write model's event store as its recorder says (what ``/health`` reports)."""
        return StoreInUse.of(self.app.recorder)

    def close(self) -> None:
        self.shadow_runs.close()
        self.access_views.close()
        self.access_log.close()
        self.read_models.close()
        self.rescorings.datastore.close()
        self.runs.close()
        self.app.close()


def build(settings: Settings, *, clock: Clock = utc_now) -> Services:
    """Open the event store and the read models (creating files and tables if needed)."""
    if settings.persistence == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    app = OutcomesApplication(settings.eventsourcing_env(), clock=clock)
    read_models = ReadModels.open(app, settings.view_store())
    rescorings = RescoringStore(settings.views_folder())
    runs = RescoringLog(settings.eventsourcing_env("rescoring-runs.sqlite"))
    access_log = AccessLog(settings.eventsourcing_env("access-log.sqlite"), clock=clock)
    access_views = ReadModels.open(access_log, settings.view_store())
    return Services(app, read_models, rescorings, runs, ShadowRuns(app, runs, rescorings),
                    ClinicAdoptions(app, read_models.open_episodes), access_log, access_views)


def open_existing_store(settings: Settings) -> OutcomesApplication | None:
    """The write model alone, for commands that only read it (criteria sets): None when there
    is nothing to read (``persistence=memory``, or no SQLite file yet), so such a command never
    creates a store. Close it after use."""
    if settings.persistence == "memory" or not settings.sqlite_path.exists():
        return None
    return OutcomesApplication(settings.eventsourcing_env())


# Keys a log line may carry: ids, codes, stages, positions, timings; never names or bodies.
LOG_KEYS = frozenset({
    "event", "level", "timestamp", "logger", "request_id", "episode_id", "method", "route",
    "status", "duration_ms", "user_id", "error_type", "problem", "position", "store",
    "host", "port", "stage", "location", "path", "ignored", "view", "reason", "lag",
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
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
