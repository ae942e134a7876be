"""Running the API under uvicorn on a socket bound beforehand, so that a port that cannot be
bound is reported plainly and ``listening`` is logged only once connections are accepted.

uvicorn (h11 protocol; httptools is not installed) bounds an idle keep-alive connection
(``timeout_keep_alive``) and the bytes of an incomplete request head
(``h11_max_incomplete_event_size``), but times nothing before the first request nor a head sent
byte by byte, and answers an oversized head with a plain 400. ``LimitedH11Protocol`` adds the
header timeout (408, connection closed) and answers 431 for an oversized head, both as
problem+json; the body limits are ASGI middleware (``api.limits``).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
from typing import Any

import h11
import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from api.limits import problem_bytes

log = structlog.get_logger("api")


class ListenError(Exception):
    """The address cannot be listened on; the message names the setting to change."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv6 when ``host`` has a colon). Raises
    ListenError with one line naming ``OUTCOMES_HOST``/``OUTCOMES_PORT``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            hint = "address already in use (set OUTCOMES_PORT or --port to a free port)"
        elif exc.errno == errno.EACCES:
            hint = "permission denied (set OUTCOMES_PORT or --port to a port above 1023)"
        else:
            hint = f"{exc.strerror or exc} (check OUTCOMES_HOST or --host)"
        raise ListenError(f"cannot listen on {where}: {hint}") from None


def settle_heap() -> None:
    """Move every object the start-up made (modules, the app, the stores, the read models) out
    of the garbage collector's sight (``gc.freeze``): they live as long as the process, and a
    full collection no longer walks them. Measured on a 100,000-episode store (bench.ui_pages),
    the pauses of full collections were the episode page's p99. Called once a worker has
    started; objects frozen are never collected, so never in a process that builds apps over
    and over (the tests)."""
    gc.collect()
    gc.freeze()


class _Server(uvicorn.Server):
    """uvicorn's server, logging ``listening`` after start-up (lifespan done, socket serving)
    and then settling the heap (``settle_heap``)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            settle_heap()
        if not self.should_exit and sockets:
            host, port = sockets[0].getsockname()[:2]
            log.info("listening", host=host, port=port)


# The largest request head (request line and headers, bytes) read: h11's default is 16 KiB.
MAX_HEAD_BYTES = 16 * 1024


class _HintingConnection(h11.Connection):
    """h11's connection, remembering the status its last protocol error suggests (431 for a
    head over the size limit, else 400). h11 bounds only a head still incomplete in its buffer;
    one that arrives whole in a single read is measured here, against the same limit."""

    error_status = 400

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request) and _head_size(event) > self._max_incomplete_event_size:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


def _head_size(request: h11.Request) -> int:
    """Bytes of the request line and headers, as sent less separators."""
    return len(request.method) + len(request.target) + sum(
        len(name) + len(value) + 4 for name, value in request.headers.raw_items())


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a header timeout: a request head (request line and headers)
    must be complete ``header_timeout`` seconds after the connection opens or, on a kept-alive
    connection, after its first byte; else 408 and the connection is closed. A malformed head is
    400 and one over ``MAX_HEAD_BYTES`` 431 (RFC 6585), problem+json rather than uvicorn's
    plain text."""

    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: _HintingConnection = _HintingConnection(
            h11.SERVER, self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._head_timer is None:  # a new head begins on a kept-alive connection
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        else:
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(408, "Request timeout", f"the request headers did not arrive within "
                         f"{self.header_timeout:g} s", "request-timeout")

    def send_400_response(self, msg: str) -> None:
        if self.conn.error_status == 431:
            self._refuse(431, "Request header fields too large",
                         f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
                         "header-too-large")
        else:
            self._refuse(400, "Bad request", "the request is not valid HTTP/1.1", "bad-request")

    def _refuse(self, status: int, title: str, detail: str, code: str) -> None:
        """Write a problem+json answer straight to the socket (no request was parsed for h11 to
        answer) and close the connection."""
        body = problem_bytes(status, title, detail, code)
        reason = {400: b"Bad Request", 408: b"Request Timeout",
                  431: b"Request Header Fields Too Large"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body)))
        log.warning("refused", status=status, problem=code)
        self.transport.write(head + body)
        self.transport.close()


def config(app: FastAPI, *, header_timeout: float) -> uvicorn.Config:
    """uvicorn's configuration: h11 with ``LimitedH11Protocol`` (``header_timeout`` seconds),
    keep-alive connections closed after 5 s idle, heads up to ``MAX_HEAD_BYTES``; uvicorn's own
    logging configuration and access log off (the API logs its requests)."""
    protocol = type("Protocol", (LimitedH11Protocol,), {"header_timeout": header_timeout})
    return uvicorn.Config(app, log_config=None, access_log=False, http=protocol,
                          timeout_keep_alive=5, h11_max_incomplete_event_size=MAX_HEAD_BYTES)


def run(app: FastAPI, sock: socket.socket, *, header_timeout: float = 10.0) -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (SIGINT/SIGTERM)."""
    _Server(config(app, header_timeout=header_timeout)).run(sockets=[sock])


class WorkerH11Protocol(LimitedH11Protocol):
    """``LimitedH11Protocol`` of a worker process: its header timeout is set by ``worker_app``
    from the worker's own settings (uvicorn imports the protocol class by name in each worker)."""


def worker_app() -> FastAPI:
    """The application of one worker process (uvicorn's app factory): settings read from the
    environment again in the worker, as the parent read them."""
    from api import create_app
    from bootstrap import Settings

    settings = Settings()
    WorkerH11Protocol.header_timeout = settings.header_timeout
    return create_app(settings)


class _WorkerProcess(Process):
    """uvicorn's worker process, serving with ``_Server`` (``listening`` logged per worker)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _Server(config=self.config)
        return self._server


class _Workers(Multiprocess):
    """uvicorn's supervisor of worker processes (restarts a worker that dies), its workers
    ``_WorkerProcess``."""

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = _WorkerProcess(self.config, self.sockets)
            process.start()
            self.processes.append(process)


def run_workers(sock: socket.socket, workers: int) -> None:
    """Serve ``worker_app`` on the bound ``sock`` in ``workers`` processes (spawned; each builds
    its own services from the environment) until SIGINT/SIGTERM; a worker that dies is
    replaced."""
    settings = uvicorn.Config("api.serving:worker_app", factory=True, workers=workers,
                              log_config=None, access_log=False,
                              http="api.serving:WorkerH11Protocol", timeout_keep_alive=5,
                              h11_max_incomplete_event_size=MAX_HEAD_BYTES)
    _Workers(settings, sockets=[sock]).run()
