"""Fail fast while PostgreSQL is away: a circuit breaker in front of every request.

The library retries a statement that meets a lost database ten times (``OperationalError``,
0.2 s apart, each waiting up to the connect timeout for a pooled connection), so without this a
request made during an outage waits about 24 s before its 503 (two statements: the command and
the access-log record) and holds a worker thread all that time; most clients give up first and
see a timeout instead of the 503.

The breaker watches the database: a probe (a new connection, ``SELECT 1``, 1 s timeout) every
``interval`` seconds; two failures in a row open it, and so does a request that meets the
database unreachable (``api.problems`` and the access log call ``trip``). While it is open every
request (``GET /health`` too: a load balancer sees the outage) is answered at once with 503
``database-unavailable`` and ``Retry-After``, touching nothing; the first probe that succeeds
closes it, so the service recovers without a restart. Requests already waiting when the
database went away still wait for the library's retries. Requests refused while it is open are
not in the access log (it cannot be written then); the request log has them as 503s.

Only for PostgreSQL: on SQLite and in memory ``probe`` is None and the breaker never opens (a
locked SQLite file is retried by the library's lock timeout instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from api import problems
from api.freshness import RETRY_AFTER

log = structlog.get_logger("api")


class Breaker:
    """Open (refusing) while the database does not answer: ``probe()`` raises then. ``probe``
    None: never opens. ``interval``: seconds between probes (``start`` runs them in a daemon
    thread until ``stop``)."""

    failures_to_open = 2

    def __init__(self, probe: Callable[[], None] | None, interval: float = 0.5) -> None:
        self.probe, self.interval = probe, interval
        self._open = threading.Event()
        self._stopped = threading.Event()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def trip(self) -> None:
        """Open the breaker now (a request met the database unreachable); the next successful
        probe closes it."""
        if self.probe is not None and not self._open.is_set():
            self._open.set()
            log.error("database unavailable: requests refused until it answers")

    def start(self) -> None:
        if self.probe is not None:
            threading.Thread(target=self._watch, name="database-probe", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        assert self.probe is not None
        failures = 0
        while not self._stopped.wait(self.interval):
            try:
                self.probe()
            except Exception:
                failures += 1
                if failures >= self.failures_to_open:
                    self.trip()
                continue
            failures = 0
            if self._open.is_set():
                self._open.clear()
                log.info("database available again")


class FailFast:
    """Pure ASGI middleware: while the breaker (``app.state.breaker``) is open, answer every
    HTTP request with 503 problem+json and ``Retry-After`` at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        breaker = getattr(scope["app"].state, "breaker", None) if scope["type"] == "http" else None
        if breaker is not None and breaker.is_open:
            await problems.problem(
                503, "Service unavailable",
                f"the database cannot be reached; retry after {RETRY_AFTER} s",
                "database-unavailable", headers={"Retry-After": str(RETRY_AFTER)},
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)


def trip(app: object) -> None:
    """Open ``app``'s breaker (an ``FastAPI`` or Starlette app; nothing when it has none)."""
    breaker = getattr(getattr(app, "state", None), "breaker", None)
    if isinstance(breaker, Breaker):
        breaker.trip()
