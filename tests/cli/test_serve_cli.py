"""``outcomes serve`` and ``outcomes --version`` as a user runs them (a real process).

serve logs the address only once the port is bound (a client can connect as soon as it reads the
line); a port already in use is one line on stderr naming ``OUTCOMES_PORT``, exit 1, no
traceback."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli_helpers import register_criteria
from typer.testing import CliRunner

from bootstrap import Settings
from cli import app

ROOT = Path(__file__).parents[2]


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {**os.environ, "OUTCOMES_SQLITE_PATH": str(tmp_path / "outcomes.sqlite"),
            "OUTCOMES_PORT": str(port), "OUTCOMES_LOG_FORMAT": "json",
            "OUTCOMES_CATCH_UP_INTERVAL": "0"}


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", "serve"], cwd=ROOT,
                            env=_env(tmp_path, port), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_port_in_use_is_one_line_naming_outcomes_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _serve(tmp_path, port)
        _, err = process.communicate(timeout=60)

    assert process.returncode == 1
    assert err.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(set OUTCOMES_PORT or --port to a free port)"]


def test_serve_logs_the_address_once_it_can_be_reached(store: str, tmp_path: Path) -> None:
    # One event in the test's store first: /health's position shows the server opened that one.
    register_criteria("clinic-madrs", {"thresholds.MADRS.remission_below": 10,
                                       "thresholds.MADRS.episode_from": 22},
                      Settings(sqlite_path=tmp_path / "outcomes.sqlite"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = _serve(tmp_path, port)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        listening = None
        while listening is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "serve ended before listening"
            record = json.loads(line)
            if record["event"] == "listening":
                listening = record
        assert listening is not None
        assert (listening["host"], listening["port"]) == ("127.0.0.1", port)
        # connect right after the line: no retry, so the port was bound when it was written
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            health = json.load(response)
        assert (health["store"], health["path"], health["position"]) == (
            (store, str(tmp_path / "outcomes.sqlite"), 1) if store == "sqlite"
            else (store, None, 1))
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version(flag: str) -> None:
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0
    assert result.output == f"outcomes {importlib.metadata.version('outcome-ledger')}\n"
    assert importlib.metadata.version("outcome-ledger") == "0.1.0"
