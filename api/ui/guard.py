"""Who is asking a page: the API's bearer token in ``Authorization``, else the session's token
(dev sign-in), validated by the API's ``TokenValidator``; roles and clinics as in the API."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote
from uuid import UUID

from fastapi import Request

from api.auth import InvalidToken, TokenValidator
from api.deps import in_clinics
from api.identity import Principal
from api.limits import count_request
from api.ui.rendering import PageError, has_session
from bootstrap import Services


def page_principal(request: Request) -> Principal:
    """The caller (also stored on ``request.state.principal`` for the access log). Raises
    ``PageError`` 401 without a valid token (a ``def``: fetching keys may block)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise PageError(401, "the Authorization header is not 'Bearer <token>'")
    else:
        token = request.session.get("token", "") if has_session(request) else ""
        if not token:
            raise PageError(401, "sign in first, or send a bearer token")
    validator: TokenValidator = request.app.state.validator
    try:
        principal = validator.principal(token.strip())
    except InvalidToken as exc:
        count_request(request)
        if not header and has_session(request):
            request.session.pop("token", None)  # expired: sign in again
        raise PageError(401, str(exc)) from None
    request.state.principal = principal
    count_request(request)
    return principal


def require_role(principal: Principal, *roles: str) -> None:
    """Raises ``PageError`` 403 unless ``principal`` holds one of ``roles``."""
    if not any(principal.has(role) for role in roles):
        raise PageError(403, f"this page needs the role {' or '.join(roles)}; you have "
                             f"{', '.join(sorted(principal.roles)) or 'none'}")


def require_clinic(request: Request, clinic_id: str, principal: Principal) -> None:
    """Raises ``PageError`` 404 for a clinic not the caller's (no existence oracle)."""
    if not in_clinics(request, clinic_id, principal):
        raise PageError(404, f"no clinic {clinic_id[:64]!r}")


def page_episode(request: Request, episode_id: str, principal: Principal) -> UUID:
    """The episode id of a page's path when that episode exists in one of the caller's clinics;
    raises ``PageError`` 404 otherwise, with the same text for a malformed id, a missing episode
    and another clinic's episode (no existence oracle, as ``api.deps.episode_in_scope``)."""
    try:
        uuid = UUID(episode_id)
    except ValueError:
        raise PageError(404, f"no episode {episode_id[:64]!r}") from None
    services: Services = request.app.state.services
    if not in_clinics(request, services.app.clinic_of(uuid), principal):
        raise PageError(404, f"no episode {uuid}")
    return uuid


def page_run(request: Request, run_id: str, principal: Principal) -> UUID:
    """The re-scoring run id of a page's path when the run covers one of the caller's clinics;
    raises ``PageError`` 404 otherwise (a run over every clinic, started from the CLI, too),
    as ``api.routes.rescoring``'s run dependency."""
    try:
        uuid = UUID(run_id)
    except ValueError:
        raise PageError(404, f"no re-scoring run {run_id[:64]!r}") from None
    services: Services = request.app.state.services
    run = services.rescorings.run(uuid)
    if not in_clinics(request, run["clinic_id"] if run else None, principal):
        raise PageError(404, f"no re-scoring run {uuid}")
    return uuid


def landing(roles: Iterable[str], clinics: Iterable[str]) -> str:
    """Where a sign-in leads: the first clinic's caseload for a clinician or an auditor, its
    outcomes for a researcher, else the criteria sets (every role may read them)."""
    held, first = set(roles), min(clinics, default=None)
    if first is not None and held & {"clinician", "auditor"}:
        return f"/ui/clinics/{quote(first, safe='')}/caseload"
    if first is not None and "researcher" in held:
        return f"/ui/clinics/{quote(first, safe='')}/outcomes"
    return "/ui/criteria"
