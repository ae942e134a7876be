"""The request log: one summary line per HTTP request, and its ``X-Request-ID``.

``RequestLog`` is a plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which runs
the rest of the application in a task of its own and passes every message through memory
streams: measurable per request; issue 12). It binds a request id (``X-Request-ID`` if well
formed, else a new one), and when the response starts it logs one line with the method, the
route template (never the query string or body), the status, the time to that start and,
where known, the episode and user ids, and echoes the id in the response's headers. An
unexpected error before the response starts becomes a problem+json 500 here, logged by type
and place only (its message may quote input); after the start it propagates, as it did.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from pathlib import Path

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.deps import USER_ID

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
log = structlog.get_logger("api")


class RequestLog:
    """Bind a request id, log one summary line per HTTP request, echo the id (see module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
                break
        text = given.decode("latin-1")
        request_id = text if REQUEST_ID.match(text) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        bound = structlog.contextvars.get_contextvars()
        started = time.perf_counter()
        response_started = False

        async def send_logged(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start" and not response_started:
                response_started = True
                _summary(scope, message["status"], started, bound)
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception as exc:
            if response_started:
                raise  # part of the answer is sent: nothing to replace it with
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("unhandled error", error_type=type(exc).__name__,
                      location=f"{Path(frame.filename).name}:{frame.lineno}")
            response = problems.problem(500, "Internal error",
                                        "an unexpected error occurred; it has been logged",
                                        "internal-error")
            await response(scope, receive, send_logged)


def _summary(scope: Scope, status: int, started: float, bound: dict[str, object]) -> None:
    """Log the summary line with exactly the context this middleware bound (the request id):
    the rest of the application runs in this task, so what it might bind is set aside here."""
    current = structlog.contextvars.get_contextvars()
    if current != bound:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**bound)
    episode_id = scope.get("path_params", {}).get("episode_id", "")
    principal = (scope.get("state") or {}).get("principal")
    user = principal.sub if principal is not None else "anonymous"
    log.info("request", method=scope["method"],
             route=getattr(scope.get("route"), "path", "unmatched"),
             status=status,
             duration_ms=round(1000 * (time.perf_counter() - started), 2),
             **({"episode_id": episode_id} if UUID_TEXT.match(episode_id) else {}),
             **({"user_id": user} if USER_ID.match(user) else {}))
    if current != bound:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**current)
