"""The thin HTTP API: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response

from api import problems
from api.routes import episodes, misc
from bootstrap import Services, Settings, build, configure_logging

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = structlog.get_logger("api")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The FastAPI application. ``services`` (tests) or ``build(settings)`` at start-up; the
    services are closed at shutdown when this function built them."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build(settings)
        read_models = app.state.services.read_models
        read_models.catch_up()
        stop = (read_models.follow(settings.catch_up_interval)
                if settings.catch_up_interval > 0 else None)
        log.info("started", store=app.state.services.store_kind)
        try:
            yield
        finally:
            if stop:
                stop()
            if owned:
                app.state.services.close()

    configure_logging(settings)
    app = FastAPI(title="Outcome Ledger", version="0.1.0", lifespan=lifespan,
                  description="Treatment-outcome stages (response, remission, recovery, relapse, "
                              "recurrence) under versioned criteria sets, with a full audit trail.")
    if services is not None:
        app.state.services = services
    problems.install(app)
    app.middleware("http")(_request_log)
    app.include_router(episodes.router)
    app.include_router(misc.router)
    return app


async def _request_log(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Bind a request id (``X-Request-ID`` if well formed, else new), log one summary line with
    the route template (never the query string or body), echo the id in the response."""
    structlog.contextvars.clear_contextvars()
    given = request.headers.get("x-request-id", "")
    request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    log.info("request", method=request.method, route=getattr(route, "path", "unmatched"),
             status=response.status_code,
             duration_ms=round(1000 * (time.perf_counter() - started), 2))
    response.headers["X-Request-ID"] = request_id
    return response
