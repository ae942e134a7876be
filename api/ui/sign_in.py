"""Development-mode sign-in (no issuer configured; ``make run``): the local dev users, one
click each, from loopback clients only. Signing in mints a token of the local issuer (the one
``outcomes dev-token`` uses) into the encrypted session (``api.ui.session``); the pages
validate it like any bearer token. Not installed when an issuer is configured (``api.ui.oidc``
signs in then)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import DEV_AUDIENCE, DevIssuer, dev_key_path, is_loopback
from api.ui.guard import landing
from api.ui.rendering import PageError, checked_form, render
from api.ui.session import EXPIRES_KEY
from bootstrap import Settings

router = APIRouter(prefix="/ui", include_in_schema=False)
TOKEN_SECONDS = 8 * 3600


@dataclass(frozen=True)
class DevUser:
    sub: str
    roles: tuple[str, ...]
    clinics: tuple[str, ...]
    about: str


# The README's scenario's people.
DEV_USERS = (
    DevUser("dr-lee", ("clinician",), ("clinic-north",), "clinician, clinic-north"),
    DevUser("dr-okafor", ("clinician",), ("clinic-north",), "clinician, clinic-north"),
    DevUser("auditor-ng", ("auditor",), ("clinic-north",), "auditor, clinic-north"),
    DevUser("res-park", ("researcher",), ("clinic-north",), "researcher, clinic-north"),
    DevUser("dr-ruiz", ("clinician",), ("clinic-south",), "clinician, clinic-south"),
)


def loopback_only(request: Request) -> None:
    """Raises ``PageError`` 404 for a client not on this machine."""
    if request.client is None or not is_loopback(request.client.host):
        raise PageError(404, "the development sign-in answers on this machine only")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request) -> Response:
    loopback_only(request)
    return render(request, "sign_in.html", {"title": "Sign in (development)", "users": DEV_USERS})


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Sign in as the dev user the form names (CSRF-checked); to the page that user's role
    reads first (``guard.landing``: a researcher's clinic outcomes, else the caseload)."""
    loopback_only(request)
    fields = await checked_form(request)
    user = next((u for u in DEV_USERS if u.sub == fields.get("user")), None)
    if user is None:
        raise PageError(400, "no such development user")
    settings: Settings = request.app.state.settings
    token = DevIssuer(dev_key_path(settings)).mint(
        sub=user.sub, roles=user.roles, clinics=user.clinics, ttl=TOKEN_SECONDS,
        roles_claim=settings.auth_roles_claim, clinics_claim=settings.auth_clinics_claim,
        audience=settings.auth_audience or DEV_AUDIENCE)
    request.session.clear()  # a new session (and CSRF token) per sign-in: no fixation
    request.session["token"] = token
    request.session[EXPIRES_KEY] = int(time.time()) + TOKEN_SECONDS  # the cookie's end, too
    return RedirectResponse(landing(user.roles, user.clinics), status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await checked_form(request)
    request.session.clear()
    return RedirectResponse("/ui/sign-in", status_code=303)
