"""The ``ledger`` fixture of the tamper-evidence tests (trust_helpers.Ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from trust_helpers import Ledger

from bootstrap import Settings


@pytest.fixture
def ledger(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """An empty, initialised ledger on ``store`` (key files and checkpoints in tmp_path)."""
    fields: dict[str, Any] = {"sqlite_path": tmp_path / "var" / "outcomes.sqlite",
                              "checkpoint_interval": 0}
    if store == "postgres":
        fields.update(request.getfixturevalue("postgres_ledger").settings_fields())
    else:
        fields["store"] = "sqlite"
    yield Ledger(Settings(**fields))
