"""The pages' session: a dict in ``request.session``, kept in one cookie whose content is
encrypted and authenticated (``cryptography``'s Fernet: AES-128-CBC + HMAC-SHA256, with its
timestamp) under a key derived with HKDF-SHA256 from the session secret (ADR 0035). Nothing in
the cookie is readable without the secret, the bearer token included; a changed or expired
cookie is an empty session.

A pure ASGI middleware in the shape of starlette's ``SessionMiddleware`` (which only signs),
so authlib's Starlette client and ``request.session`` work unchanged."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("ui.session")
COOKIE = "outcomes_ui"
MAX_AGE = 8 * 3600  # seconds a session lasts at most (shorter when its token expires first)
MAX_COOKIE_BYTES = 4000  # browsers keep 4096 bytes a cookie, name and attributes included
EXPIRES_KEY = "exp"  # the session's own end (seconds since the epoch): its token's exp
HKDF_INFO = b"outcome-ledger ui session cookie v1"


def session_key(secret: bytes) -> bytes:
    """The Fernet key (urlsafe base64 of 32 bytes) derived from ``secret`` with HKDF-SHA256."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
    return base64.urlsafe_b64encode(derived)


class CookieTooLarge(ValueError):
    """The session does not fit one cookie (``MAX_COOKIE_BYTES``)."""


class EncryptedSessionMiddleware:
    """Under ``path`` only (the API's own paths have no session): loads ``scope["session"]``
    from the encrypted cookie and writes it back when the
    response starts: deleted when empty, else with ``Max-Age`` the lesser of ``max_age`` and
    the seconds to the session's ``exp`` entry. ``secure(connection)`` says whether the cookie
    gets the ``Secure`` flag (False only for plain http on loopback)."""

    def __init__(self, app: ASGIApp, *, secret: bytes, secure: Callable[[HTTPConnection], bool],
                 cookie: str = COOKIE, max_age: int = MAX_AGE, path: str = "/ui") -> None:
        self.app, self.secure, self.cookie = app, secure, cookie
        self.max_age, self.path = max_age, path
        self.fernet = Fernet(session_key(secret))

    def load(self, value: str) -> dict[str, Any]:
        """The session a cookie value holds; empty when forged, changed, old or expired."""
        try:
            data = json.loads(self.fernet.decrypt(value.encode("ascii"), ttl=self.max_age))
        except (InvalidToken, UnicodeError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        expires = data.get(EXPIRES_KEY)
        if isinstance(expires, int | float) and expires <= time.time():
            return {}
        return data

    def dump(self, session: dict[str, Any]) -> str:
        """The cookie value of ``session``. Raises ``CookieTooLarge``."""
        value = self.fernet.encrypt(json.dumps(session, separators=(",", ":")).encode()).decode()
        if len(value) + len(self.cookie) > MAX_COOKIE_BYTES:
            raise CookieTooLarge(f"the session needs {len(value)} bytes, more than a cookie holds")
        return value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not (
                scope["path"] == self.path or scope["path"].startswith(self.path + "/")):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        had_cookie = self.cookie in connection.cookies
        scope["session"] = self.load(connection.cookies[self.cookie]) if had_cookie else {}
        loaded = dict(scope["session"])

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: dict[str, Any] = scope["session"]
                headers = MutableHeaders(scope=message)
                try:
                    value = self.dump(session) if session and (
                        session != loaded or not had_cookie) else None
                except CookieTooLarge:
                    log.warning("session too large for a cookie: not kept", keys=len(session))
                    session.clear()
                    value = None
                if value is not None:
                    headers.append("Set-Cookie", self.header(value, self.seconds(session),
                                                             connection))
                elif not session and had_cookie:
                    headers.append("Set-Cookie", self.header("", 0, connection))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def seconds(self, session: dict[str, Any]) -> int:
        """The cookie's ``Max-Age``: ``max_age``, or fewer when the session's token ends first."""
        expires = session.get(EXPIRES_KEY)
        if isinstance(expires, int | float):
            return max(0, min(self.max_age, int(expires - time.time())))
        return self.max_age

    def header(self, value: str, max_age: int, connection: HTTPConnection) -> str:
        """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, path ``/ui``, Secure when asked."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[self.cookie] = value
        morsel = cookie[self.cookie]
        morsel["path"], morsel["max-age"] = self.path, str(max_age)
        morsel["httponly"], morsel["samesite"] = True, "lax"
        if self.secure(connection):
            morsel["secure"] = True
        return morsel.OutputString()
