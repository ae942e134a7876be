"""Fixtures for the HTTP API tests: the app with the clock stopped at 2027-12-31 UTC (so every 2026
and 2027 date in the vectors is in the past), driven through ``fastapi.testclient.TestClient`` with
the lifespan running. The store is in memory; a test marked ``file_store`` (the store is what it
tests) gets a throwaway SQLite file store in its ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import Api, app_settings, memory_settings, running
from fastapi.testclient import TestClient

from bootstrap import Settings


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.node.get_closest_marker("file_store"):
        return app_settings(tmp_path)
    return memory_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)
