"""Errors as ``application/problem+json`` (RFC 9457): one table from domain error to status.

Every problem has ``type``, ``title``, ``status`` and ``detail``, plus ``code`` and, where known,
the offending ``field``. Validation problems list ``errors`` (location and message only: the
submitted values are never echoed, they may hold personal data).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from domain.errors import ConflictError, DomainError, InvalidInputError, NotFoundError

MEDIA_TYPE = "application/problem+json"
# Domain error class -> (status, title). The most specific class listed wins.
STATUS: list[tuple[type[DomainError], int, str]] = [
    (NotFoundError, 404, "Not found"),
    (ConflictError, 409, "Conflict with the episode's state"),
    (InvalidInputError, 422, "Invalid input"),
]



def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"/problems/{code}", "title": title, "status": status, "detail": detail,
            "code": code, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, title = next(((s, t) for cls, s, t in STATUS if isinstance(exc, cls)),
                         (422, "Invalid input"))
    return problem(status, title, exc.message, exc.code, field=exc.field)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": [str(part) for part in e.get("loc", ())], "msg": e.get("msg", "")}
              for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem(422, "Invalid input", detail or "the request is malformed",
                   "validation-error", errors=errors)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): malformed input.
        return problem(422, "Invalid input", "the request body is not valid JSON",
                       "validation-error")
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return problem(exc.status_code, str(exc.detail), str(exc.detail), code)




def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (unexpected errors are answered by the request
    middleware, which also logs them)."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
