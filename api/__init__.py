"""The thin HTTP API: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from api import auth, openapi, problems, ui
from api.access import AccessLogMiddleware
from api.availability import Breaker, FailFast
from api.freshness import runs_inline
from api.limits import BodyLimit, HostCheck, RateLimiter, rate_limited
from api.request_log import RequestLog
from api.routes import access, alerts, audit, caseload, episodes, misc, rescoring
from api.schemas import clean_parameters
from application import overdue
from bootstrap import Services, Settings, build, configure_logging
from trust import checkpoints

log = structlog.get_logger("api")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The FastAPI application. ``services`` (tests) or ``build(settings)`` at start-up; the
    services are closed at shutdown when this function built them. Raises ``ValueError``
    naming the setting when the authentication settings are incomplete (``api.auth``)."""
    settings = settings or Settings()
    validator = auth.validator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build(settings)
        app.state.breaker = breaker = Breaker(app.state.services.database_probe())
        breaker.start()
        read_models = app.state.services.read_models
        # Inline (one process on SQLite or memory): this process keeps its read models current.
        # With runners (``outcomes projections run``) it never catches up (ADR 0019).
        inline = runs_inline(settings)
        if inline:
            read_models.catch_up()
        stop = (read_models.follow(settings.catch_up_interval)
                if inline and settings.catch_up_interval > 0 else None)
        # ``outcomes serve``: a signed checkpoint every checkpoint_interval seconds when a tree
        # grew (one writer across workers: a lock in the checkpoint folder; trust.checkpoints)
        stop_checkpoints = checkpoints.follow(settings, app.state.services) if owned else None
        # ``outcomes serve``: an overdue sweep every overdue_sweep_interval seconds (ADR 0031)
        stop_sweeps = overdue.follow(
            app.state.services.app, app.state.services.read_models.open_episodes,
            interval=settings.overdue_sweep_interval, overdue_days=settings.overdue_days,
            recorded_by=overdue.SWEEPER) if owned else None
        store = app.state.services.store
        log.info("started", store=store.kind, path=store.path,
                 projections="inline" if inline else "runners")
        if ignored := Settings.unknown_variables():
            log.warning("unknown settings ignored", ignored=ignored)
        try:
            yield
        finally:
            breaker.stop()
            if stop_checkpoints:
                stop_checkpoints()
            if stop_sweeps:
                stop_sweeps()
            if stop:
                stop()
            if owned:
                app.state.services.close()

    configure_logging(settings)
    # /docs and /redoc serve Swagger UI and ReDoc from the fastapi-offline package (no CDN: the
    # service may run where nothing outside is reachable); no online validator badge either.
    app = FastAPIOffline(
        title="Outcome Ledger", version="0.1.0", lifespan=lifespan,
        description="Treatment-outcome stages (response, remission, recovery, relapse, "
                    "recurrence) under versioned criteria sets, with a full audit trail.",
        swagger_ui_parameters={"validatorUrl": None})
    if services is not None:
        app.state.services = services
    app.state.validator = validator
    app.state.settings = settings
    problems.install(app)
    openapi.install(app)
    # Each middleware added wraps the ones before: outermost first, Host check, request log, body
    # limit, then the routes with their guards.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
    app.add_middleware(RequestLog)
    app.add_middleware(HostCheck, allowed_hosts=settings.allowed_host_names())
    app.state.rate_limiter = None if settings.rate_limit == "off" else RateLimiter(settings.rate_limit)
    # Every route needs a bearer token but GET /health (and the docs and openapi.json, which
    # FastAPI serves itself: they describe the API and hold no data). The rate limit runs after
    # authentication (it counts per request.state.principal); then ids in paths and queries.
    guards = [Depends(auth.authenticate), Depends(rate_limited), Depends(clean_parameters)]
    for router in (episodes.router, alerts.router, misc.router, rescoring.router, access.router,
                   audit.router, caseload.router):
        app.include_router(router, dependencies=guards)
    app.include_router(misc.public, dependencies=[Depends(rate_limited)])  # by client address
    ui.install(app, settings)  # the pages under /ui/ (their own guard: bearer or session token)
    # outermost: every request is recorded, those the inner middlewares refuse included; keep
    # it the last middleware added
    app.add_middleware(AccessLogMiddleware)
    # outside even that: while PostgreSQL is away, every request is a 503 at once (no waits on
    # the library's retries; api.availability)
    app.add_middleware(FailFast)
    return app

