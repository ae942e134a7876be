"""Every command-line test runs on a store of its own in a temporary folder (never ``./var``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _store_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(tmp_path / "var" / "outcomes.sqlite"))
