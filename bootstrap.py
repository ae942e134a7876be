"""Composition root: settings -> the eventsourcing environment, the read models, logging.

Used by the API (``api.create_app``), the CLI and the benchmarks; nothing happens at import time.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import structlog
from eventsourcing.persistence import Recorder
from eventsourcing.popo import POPORecorder
from eventsourcing.sqlite import SQLiteRecorder
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.environment import ExplicitEnvironment
from application.outcomes import Clock, OutcomesApplication, utc_now
from domain.errors import EpisodeClosedError, UnstageableInstrumentError
from domain.rescoring import RescoringLog
from projections.rescorings import RescoringStore, execute
from projections.runner import ReadModels


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


class RescoringRuns(ExplicitEnvironment[UUID], RescoringLog):
    """The shadow-run log, configured only by ``Settings`` (never ``os.environ``)."""

    name = RescoringLog.name


@dataclass
class Services:
    """The write model, its read models and the shadow-run store, built and closed together."""

    app: OutcomesApplication
    read_models: ReadModels
    rescorings: RescoringStore
    runs: RescoringLog
    _stop: threading.Event = field(default_factory=threading.Event)
    _runs: list[threading.Thread] = field(default_factory=list)

    def start_rescoring(self, run_id: UUID) -> None:
        """Execute a requested shadow run in a background thread (interrupted at close; a run
        that fails is marked ``failed``, and its error type logged)."""
        def run() -> None:
            try:
                execute(self.app, self.runs, self.rescorings, run_id, stop=self._stop)
            except Exception as exc:
                structlog.get_logger("rescoring").error("re-scoring failed",
                                                        error_type=type(exc).__name__)
                self.rescorings.finish(run_id, "failed")

        thread = threading.Thread(target=run, name=f"rescoring-{run_id}", daemon=True)
        self._runs.append(thread)
        thread.start()

    def adopt_for_clinic(self, clinic_id: str, *, criteria: str, params: dict[str, Any] | None,
                         reason: str, recorded_by: str) -> dict[str, Any]:
        """Adopt ``criteria`` for every open episode of a clinic; returns per-episode results
        (``adopted``: ids changed, ``unchanged``: already under that set, ``skipped``: id and
        error code of an episode the set cannot stage, or one closed meanwhile). Raises the
        application's errors for an unknown set before any episode is touched."""
        self.app.criteria_set(criteria, params)
        self.read_models.catch_up(["episodes"])
        adopted: list[str] = []
        unchanged: list[str] = []
        skipped: list[dict[str, str]] = []
        after = 0
        while True:
            page, after_next = self.read_models.episodes.find(clinic_id=clinic_id, after=after,
                                                              limit=500)
            for summary in page:
                if summary["closed_on"] is not None:
                    continue
                try:
                    result = self.app.adopt_criteria(
                        UUID(summary["episode_id"]), criteria=criteria, params=params,
                        reason=reason, recorded_by=recorded_by)
                except (UnstageableInstrumentError, EpisodeClosedError) as exc:
                    # one episode the set cannot apply to must not stop (and half-apply) the rest
                    skipped.append({"episode_id": summary["episode_id"], "code": exc.code})
                    continue
                (unchanged if result.replayed else adopted).append(summary["episode_id"])
            if after_next is None:
                break
            after = after_next
        return {"clinic_id": clinic_id, "adopted": adopted, "unchanged": unchanged,
                "skipped": skipped}

    @property
    def store(self) -> StoreInUse:
        """The write model's event store as its recorder says (what ``/health`` reports)."""
        return StoreInUse.of(self.app.recorder)

    def close(self) -> None:
        self._stop.set()
        for thread in self._runs:
            thread.join(timeout=30)
        for view in self.read_models.views.values():
            view.datastore.close()
        self.rescorings.datastore.close()
        self.runs.close()
        self.app.close()


def build(settings: Settings, *, clock: Clock = utc_now) -> Services:
    """Open the event store and the read models (creating files and tables if needed)."""
    if settings.persistence == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    app = OutcomesApplication(settings.eventsourcing_env(), clock=clock)
    read_models = ReadModels.open(app, settings.views_folder())
    rescorings = RescoringStore(settings.views_folder())
    runs = RescoringRuns(settings.eventsourcing_env("rescoring-runs.sqlite"))
    return Services(app, read_models, rescorings, runs)


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
    "host", "port", "stage", "location", "path", "ignored",
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
