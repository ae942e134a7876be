"""Recording every request in the access log (``application.access_log``), before it is answered.

``AccessLogMiddleware`` is a plain ASGI middleware installed outermost of the application's own
middlewares (the last ``add_middleware`` in ``api.create_app``), so it also sees the requests
that inner middlewares answer by themselves (413, 429, a host check) and those no route matches.
It waits for the response's ``http.response.start``, appends the record (``GroupCommit``: in
one writer thread, so the event loop never waits for the disk, with the records of the
requests answered meanwhile in the same transaction: one fsync for them all) and only then
passes the start on: the client receives no byte of an answer whose record is not stored. When
the append fails the client gets a 500 problem instead of the answer (fail closed: no
acknowledged request without a record), a 503 with Retry-After when the database cannot be
reached.

What it records comes from the request's scope only: ``request.state.principal`` (set by the
authentication dependency; absent: ``anonymous``), ``request.state.clinic_id`` (set by routes)
or else a ``clinic_id`` path or query parameter, the route
template, the ``episode_id``, ``run_id`` and ``assessment_id`` path parameters (or the id in a
201/202 ``Location``; ``request.state.assessment_id`` for a recorded assessment), the
status, the ``X-Request-ID`` the logging middleware echoes, and the peer's address. Never the
body, the token, nor any other query-string value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import re
import threading
import uuid
import weakref
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import availability, problems
from api.freshness import RETRY_AFTER, UNAVAILABLE
from api.identity import Principal
from api.request_log import REQUEST_ID, UUID_TEXT
from application.access_log import AccessLog
from domain.access import ANONYMOUS, Access

# Ids kept only when they look like ids (a query string or path may hold anything).
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
CREATED = re.compile(r"/(episodes|rescorings)/([0-9a-fA-F-]{36})(?:$|[/?])")
log = structlog.get_logger("api")


def _id(value: Any, pattern: re.Pattern[str] = ID) -> str | None:
    return value if isinstance(value, str) and pattern.match(value) else None


def access_of(scope: Scope, status: int, at: Any, request_id: str,
              location: str | None = None) -> Access:
    """The access record of the request ``scope`` answered with ``status`` (``at``: its arrival
    time; ``location``: the answer's ``Location`` header, which names a created resource)."""
    state = scope.get("state") or {}
    principal = state.get("principal")
    if not isinstance(principal, Principal):
        principal = None
    params = scope.get("path_params") or {}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    created: dict[str, str] = ({m[1]: m[2] for m in CREATED.finditer(location or "")}
                               if status in (201, 202) else {})
    clinic = (_id(state.get("clinic_id")) or _id(params.get("clinic_id"))
              or _id((query.get("clinic_id") or [None])[0]))
    route = getattr(scope.get("route"), "path", None)
    client = scope.get("client")
    return Access(
        sub=principal.sub if principal else ANONYMOUS, authenticated=principal is not None,
        roles=tuple(sorted(principal.roles)) if principal else (),
        clinics=tuple(sorted(principal.clinics)) if principal else (),
        clinic_id=clinic, method=str(scope.get("method", ""))[:16],
        route=route if isinstance(route, str) else "unmatched",
        episode_id=_id(params.get("episode_id") or created.get("episodes"), UUID_TEXT),
        run_id=_id(params.get("run_id") or created.get("rescorings"), UUID_TEXT),
        assessment_id=_id(state.get("assessment_id")) or _id(params.get("assessment_id")),
        status=status, at=at,
        request_id=request_id, client=str(client[0]) if client else None)


class GroupCommit:
    """Group commit of the access log: ``record`` hands an access to one writer thread, which
    appends every access waiting at that moment (at most ``max_batch``) in one transaction
    (``AccessLog.record_all``; a lone one with ``AccessLog.record``) and then answers each
    waiter with its position. When that transaction fails (none of it is stored), each access
    of the batch is appended alone, so only a record that cannot be stored fails its request,
    with its own error. So an answer is still sent only once its record is durable (``synchronous=FULL``), but
    concurrent requests share one fsync, and no request takes a worker thread of its own
    (ADR 0029). The thread ends after ``idle`` seconds without work and starts again with the
    next access."""

    def __init__(self, access_log: AccessLog, *, max_batch: int = 64, idle: float = 1.0) -> None:
        self.access_log, self.max_batch, self.idle = access_log, max_batch, idle
        self._waiting: queue.SimpleQueue[tuple[Access, concurrent.futures.Future[int]]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    async def record(self, access: Access) -> int:
        """Append ``access`` (with the others waiting); its position once committed. Raises
        what the append raised."""
        done: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._waiting.put((access, done))
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write, name="access-log-writer",
                                                daemon=True)
                self._writer.start()
        return await asyncio.wrap_future(done)

    def _write(self) -> None:
        while True:
            try:
                batch = [self._waiting.get(timeout=self.idle)]
            except queue.Empty:
                with self._lock:  # nothing came meanwhile: end; the next record starts one
                    if self._waiting.empty():
                        self._writer = None
                        return
                continue
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._append([access for access, _ in batch])
            except Exception as exc:  # never let the writer die with waiters unanswered
                outcomes = [exc] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=False):
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    # unless its request was cancelled meanwhile
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)

    def _append(self, accesses: list[Access]) -> list[int | Exception]:
        """Each access's position, or the error that kept it from being stored: all of them in
        one transaction; when that fails, each alone, so that a record which cannot be stored
        fails only its own request (a store that is down fails each of them)."""
        if len(accesses) > 1:
            try:
                positions = self.access_log.record_all(accesses)
            except Exception:  # each is tried alone below, with its own error
                pass
            else:
                if len(positions) == len(accesses):
                    return list(positions)
        outcomes: list[int | Exception] = []
        for access in accesses:
            try:
                outcomes.append(self.access_log.record(access))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes


_group_commits: weakref.WeakKeyDictionary[AccessLog, GroupCommit] = weakref.WeakKeyDictionary()


def group_commit(access_log: AccessLog) -> GroupCommit:
    """The ``GroupCommit`` of ``access_log`` (one per access log, made at its first use)."""
    found = _group_commits.get(access_log)
    if found is None:
        found = _group_commits.setdefault(access_log, GroupCommit(access_log))
    return found


class AccessLogMiddleware:
    """Append an access record for every HTTP request before its answer is sent (see module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access_log: AccessLog = scope["app"].state.services.access_log
        at = access_log.clock()
        recorded = failed = unavailable = False

        async def record(status: int, headers: MutableHeaders | None) -> bool:
            """Append the record; False (and an error line) when the append failed."""
            request_id = headers.get("x-request-id") if headers is not None else None
            if not request_id:
                given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
                request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
                if headers is not None:
                    headers["X-Request-ID"] = request_id
            location = headers.get("location") if headers is not None else None
            try:
                await group_commit(access_log).record(
                    access_of(scope, status, at, request_id, location))
            except Exception as exc:
                log.error("access log append failed", error_type=type(exc).__name__)
                nonlocal unavailable
                unavailable = isinstance(exc, UNAVAILABLE)
                if unavailable:
                    availability.trip(scope["app"])
                return False
            return True

        async def send_recorded(message: Message) -> None:
            nonlocal recorded, failed
            if failed:
                return  # the answer was replaced by a 500 problem: drop the rest of it
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                if not await record(message["status"], MutableHeaders(scope=message)):
                    failed = True
                    # The database gone: 503, try again; anything else stays a 500.
                    status, title, retry = ((503, "Service unavailable", {"Retry-After": str(
                        RETRY_AFTER)}) if unavailable else (500, "Internal error", None))
                    await problems.problem(
                        status, title, "the access could not be recorded",
                        "access-log-unavailable", headers=retry)(scope, receive, send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception as exc:
            if not recorded:
                recorded = True
                await record(exc.status_code if isinstance(exc, HTTPException) else 500, None)
            raise
