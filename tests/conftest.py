"""Fixtures for every test folder: the PostgreSQL server and places (``tests/support/postgres.py``)
and the ``store`` a test runs on.

Every test whose fixtures ask for ``store`` runs twice, ids ``[memory]`` (or ``[sqlite]``) and
``[postgres]``: ``memory`` is the in-memory store the fast tests use, ``sqlite`` the file store
for a test marked ``file_store`` and for the command line (a user's files); ``postgres`` a
ledger of the test's own on the session's server. A test marked ``sqlite_only`` (it tests the
SQLite files themselves) runs once, on SQLite.
"""

from __future__ import annotations

import pytest
from postgres import (  # noqa: F401  (fixtures)
    SERVER_VARIABLES,
    fresh_schema,
    postgres_database,
    postgres_ledger,
    postgres_places,
    postgres_server,
)

FILE_STORE_FOLDERS = ("cli", "projections")  # tests/<folder>/: the store is files (users', views')


def store_values(metafunc: pytest.Metafunc) -> list[str]:
    """The stores a test runs on, in id order."""
    node = metafunc.definition
    if node.get_closest_marker("sqlite_only"):
        return ["sqlite"]
    in_file_folder = any(part in FILE_STORE_FOLDERS for part in node.path.parent.parts[-1:])
    first = "sqlite" if node.get_closest_marker("file_store") or in_file_folder else "memory"
    return [first, "postgres"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" in metafunc.fixturenames:
        values = store_values(metafunc)
        metafunc.parametrize("store", [
            pytest.param(value, id=value,
                         marks=[pytest.mark.postgres] if value == "postgres" else [])
            for value in values], indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """``"memory"``, ``"sqlite"`` or ``"postgres"``: the store this run of the test uses."""
    value: str = request.param
    return value


@pytest.fixture(autouse=True)
def _no_test_server_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OUTCOMES_TEST_POSTGRES_* are the suite's, read at import (postgres.NAMED_SERVER): no
    test sees them, so none counts them among the OUTCOMES_* variables that name no setting."""
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
