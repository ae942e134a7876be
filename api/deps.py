"""Dependencies shared by the routes: the services, the acting user, the expected version."""

from __future__ import annotations

import re
from typing import Annotated

import structlog
from fastapi import Depends, Header, Request

from bootstrap import Services
from domain.errors import InvalidInputError

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_fresh_services(request: Request) -> Services:
    """The services with the read models caught up (read-your-writes, and other processes')."""
    services = get_services(request)
    services.read_models.catch_up()
    return services


def get_user(x_user_id: Annotated[str | None, Header()] = None) -> str:
    """The acting user from ``X-User-Id`` (an opaque id; default ``anonymous``) until
    authentication arrives; recorded as ``recorded_by``."""
    user = x_user_id or "anonymous"
    if not USER_ID.match(user):
        raise InvalidInputError("X-User-Id: 1..64 letters, digits or . _ @ : -",
                                field="X-User-Id")
    structlog.contextvars.bind_contextvars(user_id=user)
    return user


def get_expected_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """The episode version in ``If-Match`` (``"3"``, ``3`` or ``W/"3"``), or None."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInputError('If-Match: expected the episode version, e.g. "3"',
                                field="If-Match")
    return int(value)


ServicesDep = Annotated[Services, Depends(get_services)]
FreshServicesDep = Annotated[Services, Depends(get_fresh_services)]
UserDep = Annotated[str, Depends(get_user)]
IfMatchDep = Annotated[int | None, Depends(get_expected_version)]
