"""Pagination: every collection is ``{"items": [...], "next": <URL or null>}`` with ``?limit=``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500).")]
# The bound keeps a cursor within SQLite's INTEGER (a larger one is a 422, not an OverflowError).
Cursor = Annotated[int, Query(ge=0, le=2**63 - 1, description="From the previous page's next.")]


def next_url(request: Request, after: int | str | None) -> str | None:
    """The URL of the next page (same filters, ``cursor=after``), or None on the last page."""
    if after is None:
        return None
    return str(request.url.include_query_params(cursor=after))
