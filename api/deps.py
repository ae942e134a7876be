"""Dependencies shared by the routes: the services, the caller (its roles and clinics), the
episode in the caller's clinics, the expected version."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from api.freshness import fresh_view
from api.identity import Principal
from bootstrap import Services
from domain.errors import DomainError, EpisodeNotFoundError, InvalidInputError
from projections.audit import AuditView
from projections.caseload import CaseloadView
from projections.cohort import CohortView
from projections.episodes import EpisodesView
from projections.stages import StagesView


class AuthenticationRequired(DomainError):
    """No authenticated principal (a missing or invalid bearer token): 401."""

    code = "authentication-required"


class Forbidden(DomainError):
    """The caller lacks the role a route needs, or names a clinic its token does not carry in a
    write (403). Reads of another clinic's resource are 404 instead (``EpisodeNotFoundError``):
    no existence oracle."""

    code = "forbidden"


# A subject the request log may name (the token's sub when it looks like an opaque id).
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
# Also the OpenAPI pattern: ECMA-262 syntax (no named groups).
IF_MATCH = re.compile(r'^\s*(\*|(W/)?"*([0-9]{1,18})"*)\s*$')


# The dependencies that neither block nor wait (no store, no network) are ``async def``: FastAPI
# runs a plain ``def`` dependency in a worker thread, one hand-off each (measured: 12 per POST
# before, ADR 0029); those that read the store (``episode_in_scope``, ``fresh_view``) or may
# fetch keys (``api.auth.authenticate``) stay ``def``, off the event loop.


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def principal_of(request: Request) -> Principal:
    """The authenticated caller, which the authentication dependency (``api.auth``, run before
    every protected route) stored on ``request.state.principal``. Raises
    ``AuthenticationRequired`` (401) when there is none."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise AuthenticationRequired("a bearer token is required")
    return principal


async def current_principal(request: Request) -> Principal:
    """``principal_of`` as a dependency."""
    return principal_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def get_user(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    """The acting user, recorded as ``recorded_by``: the token's ``sub``."""
    return principal.sub


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting a caller holding any of ``roles`` (``Depends(require("auditor"))``,
    in a route's ``dependencies`` or as a ``Principal`` parameter). Raises ``Forbidden`` (403)
    naming the missing role, ``AuthenticationRequired`` (401) without a principal."""
    async def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if not any(principal.has(role) for role in roles):
            raise Forbidden(f"this needs the role {' or '.join(roles)}; the token carries "
                            f"{', '.join(sorted(principal.roles)) or 'none'}", field="roles")
        return principal
    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency


def in_clinics(request: Request, clinic_id: str | None, principal: Principal) -> bool:
    """Whether ``clinic_id`` is one of the caller's; records it for the access log. None (the
    resource does not exist) is recorded too, so a missing resource and another clinic's leave
    the same trace to the caller's auditors whatever was recorded before (a run's clinic)."""
    request.state.clinic_id = clinic_id
    return clinic_id is not None and principal.sees(clinic_id)


def episode_in_scope(episode_id: str, request: Request, services: ServicesDep,
                     principal: PrincipalDep) -> UUID:
    """The episode id from the path, when that episode exists and belongs to one of the
    caller's clinics; anything else answers 404 with the same body (not a UUID, no such
    episode, another clinic's episode): no existence oracle (OWASP API1:2023)."""
    try:
        uuid = UUID(episode_id)
    except ValueError:
        raise EpisodeNotFoundError(f"no episode {episode_id[:64]!r}") from None
    if not in_clinics(request, services.app.clinic_of(uuid), principal):
        raise EpisodeNotFoundError(f"no episode {uuid}")
    return uuid


async def get_expected_version(if_match: Annotated[str | None, Header(
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


EpisodesDep = Annotated[EpisodesView, Depends(fresh_view("episodes"))]
StagesDep = Annotated[StagesView, Depends(fresh_view("stages"))]
AuditDep = Annotated[AuditView, Depends(fresh_view("audit"))]
CohortDep = Annotated[CohortView, Depends(fresh_view("cohort"))]
CaseloadDep = Annotated[CaseloadView, Depends(fresh_view("caseload"))]
UserDep = Annotated[str, Depends(get_user)]
IfMatchDep = Annotated[int | None, Depends(get_expected_version)]
EpisodeId = Annotated[UUID, Depends(episode_in_scope)]
