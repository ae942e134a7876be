"""Fixtures for the HTTP API tests: the app with the clock stopped at 2027-12-31 UTC (so every 2026
and 2027 date in the vectors is in the past), driven through ``fastapi.testclient.TestClient`` with
the lifespan running. Each test runs twice (the ``store`` fixture, tests/conftest.py): in memory
(or, for a test marked ``file_store``: the store is what it tests, a throwaway SQLite file store
in its ``tmp_path``), and on a PostgreSQL ledger of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import Api, running, store_settings
from fastapi.testclient import TestClient

from bootstrap import Settings


@pytest.fixture
def settings(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return store_settings(store, request, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)
