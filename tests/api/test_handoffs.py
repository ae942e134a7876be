"""Worker-thread hand-offs per request (ADR 0029): the dependencies that neither block nor wait
are ``async def``, POST assessments does its store work in one hand-off, and the access log is
appended by its own writer (``api.access.GroupCommit``), so a POST takes three hand-offs
(authentication, the episode's clinic, the recording) and ``GET /health``, a plain ``def``
route, two (the route, then FastAPI's check of the model it returns). Counted, not
timed: a plain ``def`` dependency added to every route would show here."""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread
import pytest
from api_helpers import Api


@pytest.fixture
def handoffs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions run in a worker thread since the fixture began."""
    names: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        inner = function
        while isinstance(inner, functools.partial):  # starlette's run_in_threadpool wraps
            inner = inner.func
        names.append(inner.__name__)
        return await run_sync(function, *args, **kwargs)
    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return names


def test_a_post_takes_three_handoffs_and_health_two(api: Api, handoffs: list[str]) -> None:
    episode_id = api.open()
    handoffs.clear()
    api.record(episode_id, "2026-01-12", 20)
    assert sorted(handoffs) == ["authenticate", "episode_in_scope", "record"]
    handoffs.clear()
    api.get("/health")
    assert len(handoffs) == 2  # FastAPI's own wrappers: their names are not ours to pin
