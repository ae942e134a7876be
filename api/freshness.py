"""Read-your-writes across processes (ADR 0019) and the database's absence.

Every write answers with its store position (``X-Ledger-Position`` and ``position`` in the
body: ``ledger_position``). A read may send ``X-Min-Position: <position>``; the read model the
route reads is then awaited, at most ``Settings.min_position_timeout`` seconds, until it has
processed that position (``fresh_view``), else 503 ``read-model-behind`` with ``Retry-After``.
Only that read model is awaited, never the others. In inline mode (one process on SQLite or
memory) the request catches up its own read model first, as before; with runners the API never
catches up, it waits for the runner (``ReadModels.wait``).

A database that cannot be reached (``UNAVAILABLE``: the library's OperationalError or
InterfaceError, psycopg's, a pool timeout) and a read model refused
(``projections.errors.ViewUnavailable``) are 503 with ``Retry-After`` too (``api.problems``),
never 500: the next request tries again with a fresh or pre-pinged connection, so the
service recovers by itself once the database is back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Annotated, Any

import psycopg
from eventsourcing import persistence
from fastapi import Header, Request, Response

from bootstrap import Services, Settings
from domain.errors import DomainError, InvalidInputError
from projections.runner import ReadModels

# At most 18 digits, as If-Match: a position always fits a signed 64-bit integer.
MIN_POSITION = re.compile(r"^[0-9]{1,18}$")
RETRY_AFTER = 1  # seconds: what a 503 asks the client to wait
POSITION_HEADER = "X-Ledger-Position"
# Errors that mean "the database is not reachable now" (never a bug of the request).
UNAVAILABLE: tuple[type[Exception], ...] = (
    persistence.OperationalError, persistence.InterfaceError, psycopg.OperationalError,
    psycopg.InterfaceError, sqlite3.OperationalError)


class ReadModelBehind(DomainError):
    """The read model a request reads has not reached its ``X-Min-Position`` in time (503)."""

    code = "read-model-behind"
    retry_after = RETRY_AFTER


MinPositionHeader = Annotated[str | None, Header(
    alias="X-Min-Position", json_schema_extra={"pattern": MIN_POSITION.pattern},
    description="Answer only once the read model has processed this store position (a write's "
                "X-Ledger-Position); 503 with Retry-After when it does not within "
                "OUTCOMES_MIN_POSITION_TIMEOUT seconds (default 2).")]


def min_position(x_min_position: MinPositionHeader = None) -> int | None:
    """The position in ``X-Min-Position`` (None when absent). Raises InvalidInputError (422)
    unless it is 1 to 18 digits."""
    if x_min_position is None:
        return None
    if not MIN_POSITION.match(x_min_position):
        raise InvalidInputError("X-Min-Position: expected a store position, 1 to 18 digits",
                                field="X-Min-Position")
    return int(x_min_position)


def ledger_position(response: Response, services: Services, position: int | None) -> int:
    """Set ``X-Ledger-Position`` to a write's position and return it. None (nothing was stored:
    a replay, an unchanged definition) is the store's last position, which the earlier write
    did not exceed, so waiting for it still shows that write."""
    if position is None:
        position = services.app.recorder.max_notification_id() or 0
    response.headers[POSITION_HEADER] = str(position)
    return position


def runs_inline(settings: Settings) -> bool:
    """Whether this process keeps its read models current itself (the settings' projection
    mode: inline on SQLite or memory with one process, runners otherwise)."""
    return settings.projection_mode() == "inline"


def fresh_view(name: str) -> Callable[..., Any]:
    """A dependency giving the read model ``name``, current enough for the request: caught up
    first in inline mode; at ``X-Min-Position`` when sent (``ReadModels.wait``, which counts a
    position of an event outside the view's topics as processed once nothing of its topics
    comes before it; ReadModelBehind, 503, when it does not get there in time;
    InvalidInputError, 422, for a position beyond the store's last). Raises ViewUnavailable
    (503) for a refused view."""
    def dependency(request: Request, x_min_position: MinPositionHeader = None) -> Any:
        wanted = min_position(x_min_position)
        settings: Settings = request.app.state.settings
        read_models: ReadModels = request.app.state.services.read_models
        if runs_inline(settings):
            read_models.catch_up([name])
        if wanted is None:
            return read_models.view(name)
        # Before any wait: ``wait`` counts a position with nothing of the view's topics before
        # it as processed, so a position beyond the store would otherwise be a 200 at once.
        last = read_models.app.recorder.max_notification_id() or 0
        if wanted > last:  # no write answered it: waiting would not help
            raise InvalidInputError(f"X-Min-Position: {wanted} is beyond the store's last "
                                    f"position {last}", field="X-Min-Position")
        if not read_models.wait(name, wanted, settings.min_position_timeout):
            raise ReadModelBehind(
                f"the {name} read model has not reached position {wanted} within "
                f"{settings.min_position_timeout:g} s; retry after {RETRY_AFTER} s",
                field="X-Min-Position")
        return read_models.view(name)
    dependency.__name__ = f"fresh_{name}"
    return dependency
