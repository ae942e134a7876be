"""The clinician pages under ``/ui/`` (issue 14): server-rendered Jinja2, no JavaScript needed,
their CSS served by the app itself (ADR 0034).

``install(app, settings)`` mounts the static files, the pages and, in development mode, the
dev sign-in with its signed session cookie (starlette's ``SessionMiddleware``). A page takes
its caller from the API's bearer token in ``Authorization`` or from the session's token, both
validated by the API's own ``TokenValidator``: the same roles and clinic isolation."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from api.auth import DevIssuer, dev_key_path
from api.ui import pages, sign_in
from api.ui.episode import router as episode_router
from api.ui.rendering import STATIC, PageError, page_error
from bootstrap import Settings

SESSION_COOKIE = "outcomes_ui"
SESSION_SECONDS = 8 * 3600


def session_secret(settings: Settings) -> str:
    """The session cookie's signing secret in development mode: derived from the dev issuer's
    key (beside the store), so every worker and restart signs alike and nothing new is kept."""
    key = DevIssuer(dev_key_path(settings)).private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    return hashlib.sha256(b"outcome-ledger ui session\0" + key).hexdigest()


def install(app: FastAPI, settings: Settings) -> None:
    """Mount ``/ui/static``, the pages, and in development mode the sign-in and its session."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(PageError, page_error)  # type: ignore[arg-type]
    app.include_router(pages.router)
    app.include_router(episode_router)
    if settings.auth_issuer is None:
        # Development mode serves on loopback only (cli serve), so the cookie is not Secure;
        # an issuer's OpenID Connect sign-in (not built yet) will need https_only=True.
        app.add_middleware(SessionMiddleware, secret_key=session_secret(settings),
                           session_cookie=SESSION_COOKIE, max_age=SESSION_SECONDS,
                           same_site="lax", https_only=False, path="/ui")
        app.include_router(sign_in.router)
