"""Bounded resources at the ASGI level: request body size and read time, the ``Host`` header,
and per-identity rate limits (OWASP API Security Top 10 2023, API4 unrestricted resource
consumption; DNS rebinding for ``Host``).

``BodyLimit`` refuses a body over ``max_body_bytes`` with 413 without reading it whole (at once
on a ``Content-Length`` over the limit, else when the streamed bytes pass it) and a body that has
not arrived within ``body_timeout`` seconds with 408. ``HostCheck`` is Starlette's
``TrustedHostMiddleware`` answering problem+json. ``check_rate`` counts a request against the
caller's identity with the ``limits`` library (moving window, in-process memory) and raises
``RateLimited`` (429 with ``Retry-After``). Header timeouts and oversized headers are the server's
business (``api.serving``): they happen before the application sees a request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import Problem
from domain.errors import DomainError

MEDIA_TYPE = "application/problem+json"


def problem_bytes(status: int, title: str, detail: str, code: str) -> bytes:
    """The problem+json body (RFC 9457, the ``Problem`` schema ``api.problems`` answers with too)
    of an answer given outside the routes, as UTF-8 JSON."""
    return Problem(type=f"/problems/{code}", title=title, status=status, detail=detail,
                   code=code, field=None, errors=None).model_dump_json(exclude_none=True).encode()


async def send_problem(send: Send, status: int, title: str, detail: str, code: str, *,
                       close: bool = False) -> None:
    """Answer with a problem+json through the raw ASGI ``send``; ``close`` adds
    ``Connection: close`` (the client is still sending a body nobody will read)."""
    body = problem_bytes(status, title, detail, code)
    headers = [(b"content-type", MEDIA_TYPE.encode()),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI middleware bounding request bodies: over ``max_bytes`` (bytes) -> 413, not
    complete ``timeout`` seconds after the application first asks for it -> 408. Either answer
    closes the connection; the application then reads a disconnect and whatever it answers is
    dropped. Nothing is buffered here: chunks pass through as the server delivers them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_problem(send, 413, "Request body too large", self._too_large(), "body-too-large",
                               close=True)
            return
        received = 0
        complete = False
        answered = False
        deadline: float | None = None

        async def bounded_receive() -> Message:
            nonlocal received, complete, answered, deadline
            if complete or answered:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                answered = True
                await send_problem(send, 408, "Request timeout",
                                   f"the request body did not arrive within {self.timeout:g} s",
                                   "request-timeout", close=True)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    answered = True
                    await send_problem(send, 413, "Request body too large", self._too_large(),
                                       "body-too-large", close=True)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes (OUTCOMES_MAX_BODY_BYTES)"


class HostCheck:
    """Starlette's ``TrustedHostMiddleware`` (no ``www.`` redirect) whose refusal is a 400
    problem+json instead of plain text: a ``Host`` not in ``allowed_hosts`` (exact names; ``*``
    allows any, ``*.example.org`` a domain) is how a DNS-rebinding page would reach a service bound
    to loopback."""

    _PASSED = "outcomes.host_checked"

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=list(allowed_hosts),
                                           www_redirect=False)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[self._PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.check(scope, receive, send)
            return

        async def refusal_dropped(message: Message) -> None:
            if scope.get(self._PASSED):
                await send(message)

        await self.check(scope, receive, refusal_dropped)
        if not scope.get(self._PASSED):
            await send_problem(send, 400, "Host not allowed",
                               "the Host header names no host this service answers for "
                               "(OUTCOMES_ALLOWED_HOSTS)", "host-not-allowed")


class RateLimited(DomainError):
    """Too many requests from one identity within the window: 429 with ``Retry-After``
    (``retry_after``: whole seconds, at least 1)."""

    code = "rate-limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Per-identity limit (``"100/second"``, ``"600/minute"``: the ``limits`` notation) over a
    moving window in this process's memory (one uvicorn process; a restart forgets the counts)."""

    def __init__(self, limit: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, identity: str) -> int | None:
        """Count one request of ``identity``: None when allowed, else the whole seconds (>= 1)
        until the window admits another."""
        if self.limiter.hit(self.item, identity):
            return None
        reset = self.limiter.get_window_stats(self.item, identity).reset_time
        return max(1, math.ceil(reset - time.time()))


def check_rate(request: Request, identity: str) -> None:
    """Count the request against ``identity`` (a token's ``sub``, or ``addr:<client address>``).
    Raises ``RateLimited`` when over ``OUTCOMES_RATE_LIMIT``; does nothing when it is ``off``."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    if (retry_after := limiter.hit(identity)) is not None:
        raise RateLimited(f"too many requests; retry after {retry_after} s (OUTCOMES_RATE_LIMIT)",
                          retry_after=retry_after)


def count_request(request: Request) -> None:
    """``check_rate`` for the authenticated principal's ``sub`` when the authentication
    dependency has run before it, else for the client address."""
    principal: Any = getattr(request.state, "principal", None)
    sub = getattr(principal, "sub", None)
    client = request.client.host if request.client else "unknown"
    check_rate(request, f"sub:{sub}" if sub else f"addr:{client}")


async def rate_limited(request: Request) -> None:
    """Route dependency: ``count_request`` (``async``: counting in memory never blocks, and a
    plain ``def`` would cost a thread hand-off per request; ADR 0029)."""
    count_request(request)
