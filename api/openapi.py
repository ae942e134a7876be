"""What the OpenAPI document says beyond the response models: problem+json errors, headers.

Routes declare their errors with ``problems(404, 409, 422)`` and their headers with
``headers(201, ETAG, LOCATION)``; ``install(app)`` adds the ``Problem`` schema those refer to. A
declared 422 replaces FastAPI's default ``HTTPValidationError``, which this service never sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.problems import MEDIA_TYPE
from api.responses import Problem

REF = "#/components/schemas/{model}"
DESCRIPTIONS = {
    400: "Bad request: the Host header names no host this service answers for "
         "(OUTCOMES_ALLOWED_HOSTS).",
    408: "Request timeout: the body did not arrive within OUTCOMES_BODY_TIMEOUT.",
    413: "Payload too large: the body is over OUTCOMES_MAX_BODY_BYTES.",
    429: "Too many requests for this identity (OUTCOMES_RATE_LIMIT); Retry-After says when "
         "to try again.",
    401: "Authentication required: no bearer token, or one that failed a check (the detail "
         "names it); WWW-Authenticate says Bearer.",
    403: "Forbidden: the token lacks the role the route needs (the detail names it), or names "
         "a clinic the token does not carry in a write.",
    404: "Not found: the episode, run, criteria set or assessment does not exist, or belongs "
         "to a clinic the token does not carry (the same answer).",
    405: "Method not allowed: the Allow header lists the methods the resource has.",
    409: "Conflict with the episode's state: closed, stale If-Match, already voided, or an "
         "assessment_id already recorded with other content.",
    422: "Invalid input: a malformed body, header or query, or a value the rules refuse.",
    503: "Service unavailable: the database cannot be reached, the read model did not reach "
         "X-Min-Position in time, or it is refused until rebuilt; Retry-After says when to "
         "try again.",
}
ETAG = {"ETag": {"description": 'The episode version after the request, e.g. "3"; send it '
                                'back as If-Match.',
                 "schema": {"type": "string", "pattern": '^"[0-9]+"$'}}}
LOCATION = {"Location": {"description": "URL of the resource created or started.",
                         "schema": {"type": "string", "format": "uri"}}}


POSITION = {"X-Ledger-Position": {
    "description": "The event store position of this write (also ``position`` in the body); "
                   "send it as X-Min-Position to read it from any worker.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries: each status answered as ``application/problem+json``."""
    return {status: {"description": DESCRIPTIONS[status],
                     "content": {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}}}
            for status in statuses}


def headers(status: int, *specs: dict[str, Any], description: str | None = None,
            model: type | None = None) -> dict[int | str, dict[str, Any]]:
    """A ``responses=`` entry declaring the headers a status carries (and its body's ``model``
    when it is not the route's main status)."""
    entry: dict[str, Any] = {"headers": {k: v for spec in specs for k, v in spec.items()}}
    if description:
        entry["description"] = description
    if model is not None:
        entry["model"] = model
    return {status: entry}


def install(app: FastAPI) -> None:
    """Generate the document once, with the problem schemas in ``components``."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            _, definitions = models_json_schema([(Problem, "serialization")], ref_template=REF)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(definitions.get("$defs", {}))
            # Validation errors are answered as problems (api.problems): the 422 FastAPI adds by
            # itself to a route with parameters says so too, and its own schemas go.
            for responses in _responses(document):
                if "HTTPValidationError" in str(responses.get("422", "")):
                    responses["422"] = problems(422)[422]
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            for parameter in _parameters(document):
                _not_nullable(parameter["schema"])
            # Any request may meet the limits (api.limits) and the Host check, whatever its route.
            for responses in _responses(document):
                for status, entry in problems(400, 408, 413, 429, 503).items():
                    responses.setdefault(str(status), entry)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _not_nullable(schema: dict[str, Any]) -> None:
    """A header or query parameter is absent or a string, never null: drop the ``{"type":
    "null"}`` branch FastAPI writes for ``str | None = None`` (clients would send "null")."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1 and len(schema["anyOf"]) == 2:
        del schema["anyOf"]
        schema.update({**branches[0], **schema})


def _parameters(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            yield from operation.get("parameters", [])


def _responses(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            yield operation.setdefault("responses", {})
