"""Pagination: every collection is ``{"items": [...], "next": <URL or null>}`` with ``?limit=``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500).")]


def next_url(request: Request, after: int | None) -> str | None:
    """The URL of the next page (same filters, ``cursor=after``), or None on the last page."""
    if after is None:
        return None
    return str(request.url.include_query_params(cursor=after))
