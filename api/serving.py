"""Running the API under uvicorn on a socket bound beforehand, so that a port that cannot be
bound is reported plainly and ``listening`` is logged only once connections are accepted."""

from __future__ import annotations

import errno
import socket

import structlog
import uvicorn
from fastapi import FastAPI

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


class _Server(uvicorn.Server):
    """uvicorn's server, logging ``listening`` after start-up (lifespan done, socket serving)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            host, port = sockets[0].getsockname()[:2]
            log.info("listening", host=host, port=port)


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (SIGINT/SIGTERM); uvicorn's own
    logging configuration and access log are off (the API logs its requests)."""
    config = uvicorn.Config(app, log_config=None, access_log=False)
    _Server(config).run(sockets=[sock])
