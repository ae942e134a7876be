"""Errors as ``application/problem+json`` (RFC 9457): one table from domain error to status.

Every problem has ``type``, ``title``, ``status`` and ``detail``, plus ``code`` and, where known,
the offending ``field``. Validation problems list ``errors`` (location and message only: the
submitted values are never echoed, they may hold personal data).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from api import availability
from api.deps import AuthenticationRequired, Forbidden
from api.freshness import RETRY_AFTER, UNAVAILABLE, ReadModelBehind
from api.limits import RateLimited
from api.responses import Problem
from domain.errors import ConflictError, DomainError, InvalidInputError, NotFoundError
from projections.errors import ViewUnavailable

MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("api")
# Domain error class -> (status, title). The most specific class listed wins.
STATUS: list[tuple[type[DomainError], int, str]] = [
    (AuthenticationRequired, 401, "Authentication required"),
    (Forbidden, 403, "Forbidden"),
    (NotFoundError, 404, "Not found"),
    (ConflictError, 409, "Conflict with the episode's state"),
    (InvalidInputError, 422, "Invalid input"),
    (RateLimited, 429, "Too many requests"),
    (ReadModelBehind, 503, "Service unavailable"),
]



def problem(status: int, title: str, detail: str, code: str, *, field: str | None = None,
            errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response (the ``Problem`` schema; ``field``/``errors`` only when given)."""
    body = Problem(type=f"/problems/{code}", title=title, status=status, detail=detail,
                   code=code, field=field, errors=errors)  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def status_of(exc: DomainError) -> tuple[int, str]:
    """The HTTP status and title of a domain error (``STATUS``: the first class it is an
    instance of; 422 "Invalid input" otherwise), for the API's problems and the pages alike."""
    return next(((s, t) for cls, s, t in STATUS if isinstance(exc, cls)), (422, "Invalid input"))


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, title = status_of(exc)
    title = getattr(exc, "title", None) or title  # an error class may name its own title
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 401:
        headers = {"WWW-Authenticate": challenge(exc)}
    return problem(status, title, exc.message, exc.code, field=exc.field, headers=headers)


def challenge(exc: DomainError) -> str:
    """The ``WWW-Authenticate`` value of every 401: ``Bearer error="invalid_token"`` (RFC 6750
    §3), for a missing token too, as the API's contract (issue 9) fixes it; which check failed is
    the problem's detail."""
    return 'Bearer error="invalid_token"'


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", "")}
              for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    fields = {e["loc"][-1] for e in errors if e["loc"]}
    return problem(422, "Invalid input", detail or "the request is malformed",
                   "validation-error", errors=errors, field=fields.pop() if len(fields) == 1 else None)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): malformed input.
        return problem(422, "Invalid input", "the request body is not valid JSON",
                       "validation-error")
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request)
    return problem(exc.status_code, str(exc.detail), str(exc.detail), code, headers=headers)


def _allowed(request: Request) -> str:
    """Every method the path has (RFC 9110 §15.5.6). Starlette's own ``Allow`` names only the
    first route it matched, and GET and POST of one path are two routes here."""
    def answers(method: str) -> bool:
        scope = {**request.scope, "method": method, "path_params": {}}
        scope.pop("route", None)
        return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)
    return ", ".join(m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if answers(m))



def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable", error_type=type(exc).__name__)
    availability.trip(request.app)  # the next requests are refused at once until the database answers
    return problem(503, "Service unavailable",
                            f"the database cannot be reached; retry after {RETRY_AFTER} s",
                            "database-unavailable", headers={"Retry-After": str(RETRY_AFTER)})


def _view_refused(_: Request, exc: Exception) -> JSONResponse:
    name = getattr(exc, "name", "a")
    reason = getattr(exc, "reason", "refused")
    log.error("read model refused", problem="view-unavailable", store=str(name))
    return problem(503, "Service unavailable",
                            f"the {name} read model is refused until rebuilt: {reason}",
                            "view-unavailable", headers={"Retry-After": str(RETRY_AFTER)})


def _install_unavailable(app: FastAPI) -> None:
    """Answer the database's absence and a refused read model with 503 and Retry-After."""
    for error in UNAVAILABLE:
        app.add_exception_handler(error, _unavailable)
    app.add_exception_handler(ViewUnavailable, _view_refused)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (unexpected errors are answered by the request
    middleware, which also logs them)."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    _install_unavailable(app)
