"""The clinician pages under ``/ui/`` (issue 14): server-rendered Jinja2, no JavaScript needed,
their CSS served by the app itself (ADR 0034).

``install(app, settings)`` mounts the static files, the pages, the sign-in and the encrypted
session cookie (``api.ui.session``; ADR 0035): in development mode the dev sign-in
(``api.ui.sign_in``, loopback only); with an issuer and ``ui_client_id`` the OpenID Connect
sign-in (``api.ui.oidc``); with an issuer and no client id, bearer tokens only (no session).
A page takes its caller from the API's bearer token in ``Authorization`` or from the session's
token, both validated by the API's own ``TokenValidator``: the same roles and clinic
isolation. Unknown ``/ui/`` paths answer an HTML error page; the API's keep problem+json."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.staticfiles import StaticFiles

from api.auth import DevIssuer, dev_key_path, is_loopback
from api.ui import oidc, pages, sign_in
from api.ui.episode import router as episode_router
from api.ui.rendering import STATIC, PageError, page_error
from api.ui.session import COOKIE, MAX_AGE, EncryptedSessionMiddleware
from bootstrap import Settings

SESSION_COOKIE = COOKIE
SESSION_SECONDS = MAX_AGE


def session_secret(settings: Settings) -> bytes:
    """The session cookie's secret: ``ui_session_secret`` (or its file) when set, else (in
    development mode only) derived from the dev issuer's key beside the store, so every worker
    and restart agrees and nothing new is kept. Raises ``ValueError`` naming the setting when an
    issuer is configured without one, or the file cannot be read."""
    given = settings.ui_session_secret_value()
    if given is not None:
        return given
    if settings.auth_issuer is not None:
        raise ValueError("OUTCOMES_UI_SESSION_SECRET (or OUTCOMES_UI_SESSION_SECRET_FILE) is "
                         "required for the pages' sign-in with an issuer")
    key = DevIssuer(dev_key_path(settings)).private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    return hashlib.sha256(b"outcome-ledger ui session\0" + key).hexdigest().encode()


def secure_cookie(settings: Settings) -> Any:
    """Whether a response's session cookie is ``Secure``: never in development mode (plain
    http on loopback only); with an issuer always, but for a plain-http request from loopback
    whose external URL (``ui_base_url``) is not https."""
    def secure(connection: HTTPConnection) -> bool:
        if settings.auth_issuer is None:
            return False
        if settings.ui_base_url is not None and settings.ui_base_url.startswith("https://"):
            return True
        client = connection.client
        return not (connection.url.scheme == "http" and client is not None
                    and is_loopback(client.host))
    return secure


def install(app: FastAPI, settings: Settings) -> None:
    """Mount ``/ui/static``, the pages, the sign-in and its session, and the HTML error pages
    of ``/ui/``. Raises ``ValueError`` naming the setting (``session_secret``)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(PageError, page_error)  # type: ignore[arg-type]
    api_http_error = app.exception_handlers.get(HTTPException)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        """``/ui/`` paths: the HTML error page (an unknown page is 404); others: the API's."""
        if request.url.path == "/ui" or request.url.path.startswith("/ui/"):
            detail = ("no such page" if exc.status_code == 404 else str(exc.detail))
            return page_error(request, PageError(exc.status_code, detail))
        assert api_http_error is not None  # api.problems' (a plain function)
        reply = api_http_error(request, exc)
        assert isinstance(reply, Response)
        return reply

    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.include_router(pages.router)
    app.include_router(episode_router)
    # (the pages' routers above this line; the sign-in's and the session below)
    if settings.auth_issuer is None:
        app.include_router(sign_in.router)
    elif settings.ui_client_id is not None:
        app.state.oidc = oidc.OidcSignIn(settings)
        app.include_router(oidc.router)
    if settings.auth_issuer is None or settings.ui_client_id is not None:
        # (an issuer without a client id: bearer tokens only, no sign-in, no session)
        app.add_middleware(EncryptedSessionMiddleware, secret=session_secret(settings),
                           secure=secure_cookie(settings), cookie=SESSION_COOKIE,
                           max_age=SESSION_SECONDS, path="/ui")
