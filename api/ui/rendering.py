"""Templates, the CSRF token and the error pages of the UI."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.identity import Principal

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
# The widest form (PHQ-9: 10 items, a total and its hidden fields) has 16 fields.
MAX_FIELDS = 40
TITLES = {400: "Bad request", 401: "Sign-in required", 403: "Not allowed", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 422: "Invalid input",
          502: "Identity provider unavailable"}


class PageError(Exception):
    """A page answered with an HTML error page of ``status`` saying ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    return templates.TemplateResponse(
        request, name, {"principal": principal, "signed_in": has_session(request)
                        and "token" in request.session, "csrf": csrf_token(request), **context},
        status_code=status)


def page_error(request: Request, exc: PageError) -> Response:
    """The error page; a 401 in development mode is the way to the sign-in page instead."""
    if exc.status == 401 and has_session(request) and not request.headers.get("authorization"):
        return RedirectResponse("/ui/sign-in", status_code=303)
    return render(request, "error.html", {"title": TITLES.get(exc.status, "Error"),
                                          "detail": exc.detail, "status": exc.status},
                  status=exc.status)


def has_session(request: Request) -> bool:
    return "session" in request.scope


def csrf_token(request: Request) -> str | None:
    """The session's CSRF token (made on first use), for the hidden field of every form."""
    if not has_session(request):
        return None
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form (``application/x-www-form-urlencoded``, at most ``MAX_FIELDS`` fields),
    once its ``csrf`` field matches the session's token. Raises ``PageError`` 400 otherwise.

    A request whose caller was authenticated by its own ``Authorization`` header (a script or a
    kiosk with the API's bearer token, ``guard.page_principal``) needs no CSRF token: CSRF rides
    on credentials a browser adds by itself (the session cookie), and no other site can make a
    browser send that header."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"):
        raise PageError(400, "expected a form")
    try:
        fields = {k: v[0] for k, v in parse_qs(
            (await request.body()).decode("utf-8", "replace"), max_num_fields=MAX_FIELDS).items()}
    except ValueError:
        raise PageError(400, f"the form has too many fields (at most {MAX_FIELDS})") from None
    if request.headers.get("authorization") and isinstance(
            getattr(request.state, "principal", None), Principal):
        return fields
    expected = request.session.get("csrf") if has_session(request) else None
    given = fields.get("csrf", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise PageError(400, "the form is out of date or was not sent by this site: reload the "
                             "page and try again")
    return fields
