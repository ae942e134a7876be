"""Dependencies shared by the routes: the services, the acting user, the expected version."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from api.identity import Principal
from bootstrap import Services
from domain.errors import DomainError, InvalidInputError
from projections.audit import AuditView
from projections.cohort import CohortView
from projections.episodes import EpisodesView
from projections.stages import StagesView


class AuthenticationRequired(DomainError):
    """No authenticated principal (a missing or invalid bearer token): 401."""

    code = "authentication-required"


USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
# Also the OpenAPI pattern: ECMA-262 syntax (no named groups).
IF_MATCH = re.compile(r'^\s*(\*|(W/)?"*([0-9]+)"*)\s*$')


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _fresh(name: str) -> Callable[[Request], Any]:
    def dependency(request: Request) -> Any:
        """The read model ``name``, caught up first: a client reads its own writes (and other
        processes' writes) without waiting for the background catch-up (ADR 0007)."""
        read_models = get_services(request).read_models
        read_models.catch_up([name])
        return read_models.views[name]
    return dependency


def get_user(x_user_id: Annotated[str | None, Header(
        alias="X-User-Id", json_schema_extra={"pattern": USER_ID.pattern},
        description="The acting user (an opaque id), recorded as recorded_by.")] = None) -> str:
    """The acting user from ``X-User-Id`` (an opaque id; default ``anonymous``) until
    authentication arrives; recorded as ``recorded_by``."""
    user = "anonymous" if x_user_id is None else x_user_id  # an empty header is malformed
    if not USER_ID.match(user):
        raise InvalidInputError("X-User-Id: 1..64 letters, digits or . _ @ : -",
                                field="X-User-Id")
    return user


def current_principal(request: Request) -> Principal:
    """The authenticated caller, which the authentication dependency (``api.auth``, run before
    every protected route) stored on ``request.state.principal``. Raises
    ``AuthenticationRequired`` (401) when there is none."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise AuthenticationRequired("a bearer token is required")
    return principal


def get_expected_version(if_match: Annotated[str | None, Header(
        alias="If-Match", json_schema_extra={"pattern": IF_MATCH.pattern},
        description='The episode version the change expects, e.g. "3" (409 when stale).')
        ] = None) -> int | None:
    """The episode version in ``If-Match`` (``"3"``, ``3`` or ``W/"3"``), or None (absent, ``*``)."""
    if if_match is None:
        return None
    match = IF_MATCH.match(if_match)
    if match is None:
        raise InvalidInputError('If-Match: expected the episode version, e.g. "3"',
                                field="If-Match")
    return int(match[3]) if match[3] else None


ServicesDep = Annotated[Services, Depends(get_services)]
EpisodesDep = Annotated[EpisodesView, Depends(_fresh("episodes"))]
StagesDep = Annotated[StagesView, Depends(_fresh("stages"))]
AuditDep = Annotated[AuditView, Depends(_fresh("audit"))]
CohortDep = Annotated[CohortView, Depends(_fresh("cohort"))]
UserDep = Annotated[str, Depends(get_user)]
IfMatchDep = Annotated[int | None, Depends(get_expected_version)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
