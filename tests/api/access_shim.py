"""Test-only stand-in for the authentication dependency (``api.auth``, another branch): a bearer
token from ``TOKENS`` puts its ``Principal`` on ``request.state.principal``; any other request
but ``GET /health`` is answered 401 after the route is matched, as the real dependency does,
leaving the principal unset. Installed innermost, under the access-log middleware."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api import create_app, problems
from api.identity import Principal
from api.routes import access, episodes, misc, rescoring
from bootstrap import Services, Settings, build


def principal(sub: str, roles: str, clinics: str) -> Principal:
    return Principal(sub, frozenset(roles.split()), frozenset(clinics.split()))


# Opaque "tokens" with a secret part that must never reach the access log.
TOKENS = {
    "tok-lee-S3CR3T-9f1c": principal("dr-lee", "clinician", "clinic-a"),
    "tok-ada-S3CR3T-77ab": principal("ada-audit", "auditor", "clinic-a"),
    "tok-bo-S3CR3T-41de": principal("bo-audit", "auditor", "clinic-b"),
    "tok-kim-S3CR3T-0c2e": principal("dr-kim", "clinician", "clinic-b"),
}
# The routes as declared (FastAPI includes routers lazily: the app's own list holds wrappers).
ROUTES = [route for module in (episodes, misc, rescoring, access) for route in module.router.routes]
BEARER = {p.sub: {"Authorization": f"Bearer {t}"} for t, p in TOKENS.items()}


class PrincipalShim:
    """The shim (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        if token in TOKENS:
            scope.setdefault("state", {})["principal"] = TOKENS[token]
            await self.app(scope, receive, send)
            return
        for route in ROUTES:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                break
        await problems.problem(401, "Unauthorized", "a bearer token is required",
                               "invalid-token", headers={"WWW-Authenticate": 'Bearer'})(
            scope, receive, send)


class TickingClock:
    """A clock that advances one second per call, from ``start``."""

    def __init__(self, start: datetime) -> None:
        self.now = start - timedelta(seconds=1)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def shimmed_app(settings: Settings, services: Services) -> FastAPI:
    app = create_app(settings, services=services)
    app.user_middleware.append(Middleware(PrincipalShim))  # innermost
    return app


@contextmanager
def running_shimmed(settings: Settings, clock: TickingClock) -> Iterator[tuple[TestClient, Services]]:
    services = build(settings, clock=clock)
    try:
        with TestClient(shimmed_app(settings, services)) as client:
            yield client, services
    finally:
        services.close()
