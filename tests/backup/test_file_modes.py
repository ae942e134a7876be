"""Every file the service writes is mode 0600 in a 0700 folder (issue 11, ADR 0024): after the
commands a user runs (under the common umask 022), for a store opened by the library without the
CLI, and for a store made before issue 11 (files 0644, folders 0755), which is tightened once."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import structlog
from backup_helpers import TRIAL, new_key

from bootstrap import Settings, build
from trust.files import private_dir

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.sqlite_only


def modes(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (itself included) -> its permission bits in octal."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root, name)
            found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def not_private(folder: Path) -> dict[str, str]:
    """The paths under ``folder`` whose mode is not 0700 (folders) or 0600 (files)."""
    return {name: mode for name, mode in modes(folder).items()
            if mode != ("0o700" if (folder / name).is_dir() else "0o600")}


def _umask_022() -> None:
    os.umask(0o022)


def outcomes(env: dict[str, str], *args: str) -> str:
    """Run ``outcomes ARGS`` as a user would (umask 022); asserts exit 0, returns stdout."""
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=_umask_022)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def serve_until_listening(env: dict[str, str]) -> None:
    """Start ``outcomes serve`` (umask 022), wait for its ``listening`` line, ask /health, stop."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=_umask_022)
    try:
        assert process.stderr is not None
        while True:
            line = process.stderr.readline()
            assert line, "serve ended before listening"
            if json.loads(line).get("event") == "listening":
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert json.load(response)["position"] > 0
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_every_file_the_commands_write_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(var / "outcomes.sqlite"),
           "OUTCOMES_LOG_FORMAT": "json", "OUTCOMES_CIPHER_KEY": new_key(),
           "OUTCOMES_CHECKPOINT_INTERVAL": "0", "OUTCOMES_CATCH_UP_INTERVAL": "0"}
    outcomes(env, "db", "init")
    outcomes(env, "import", "csv", str(TRIAL), "--clinic", "trial", "--criteria", "frank1991",
             "--patient", "PATIENT", "--day", "RELDAYS", "--anchor", "2004-01-05",
             "--instrument", "HAM-D17", "--total", "HAMDTL17", "--baseline", "BASVAL")
    serve_until_listening(env)
    outcomes(env, "projections", "rebuild", "all")
    outcomes(env, "dev-token", "--sub", "dr-lee", "--role", "clinician")
    outcomes(env, "audit", "checkpoint")
    outcomes(env, "rescore", "--criteria", "acnp2006", "--clinic", "trial")
    outcomes(env, "backup", str(var / "backups" / "first"))

    written = modes(var)
    for name in ("outcomes.sqlite", "access-log.sqlite", "rescoring-runs.sqlite",
                 "pseudonym.key", "dev-issuer.key", "checkpoint-signing.key", "views",
                 "views/episodes-v2-g2.sqlite", "views/rescorings.sqlite", "checkpoints",
                 "backups/first/manifest.json", "backups/first/outcomes.sqlite"):
        assert name in written, sorted(written)
    assert not_private(var) == {}


def test_the_library_alone_writes_private_files_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        settings = Settings(sqlite_path=tmp_path / "var" / "outcomes.sqlite",
                            checkpoint_interval=0)
        settings.pseudonym_key_bytes()
        services = build(settings)
        try:
            services.app.register_criteria(criteria_id="clinic-x", base="acnp2006", params={},
                                           source="protocol", recorded_by="t")
            services.read_models.catch_up()
            written = modes(tmp_path / "var")
            assert {"outcomes.sqlite-wal", "views/audit.sqlite-wal", "pseudonym.key"} <= set(written)
            assert not_private(tmp_path / "var") == {}
        finally:
            services.close()
    finally:
        os.umask(old)


def test_a_store_made_before_issue_11_is_tightened_once_and_logged(tmp_path: Path) -> None:
    var = tmp_path / "var"
    settings = Settings(sqlite_path=var / "outcomes.sqlite", checkpoint_interval=0)
    settings.pseudonym_key_bytes()
    build(settings).close()
    for path in [var, *var.rglob("*")]:  # what an older version left behind
        path.chmod(0o755 if path.is_dir() else 0o644)
    loose = not_private(var)
    assert loose["outcomes.sqlite"] == "0o644" and loose["views"] == "0o755"

    with structlog.testing.capture_logs() as logs:
        build(settings).close()
        build(settings).close()
    assert not_private(var) == {}
    tightened = [entry for entry in logs if entry["event"] == "file modes tightened"]
    assert len(tightened) == 1, logs
    assert tightened[0]["count"] == len(loose)
    assert set(tightened[0]) == {"event", "log_level", "path", "count"}


def test_a_shared_sticky_folder_is_never_changed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    made = private_dir(shared / "a" / "b")
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (shared / "a", made)] == ["0o700"] * 2


@pytest.mark.postgres
def test_the_key_files_beside_a_postgresql_store_are_tightened_too(postgres_ledger: Any,
                                                                  tmp_path: Path) -> None:
    var = tmp_path / "var"
    settings = Settings(**postgres_ledger.settings_fields(), sqlite_path=var / "outcomes.sqlite",
                        checkpoint_interval=0)
    settings.pseudonym_key_bytes()
    (var / "checkpoints").mkdir()
    (var / "checkpoints" / "checkpoint-1.txt").write_text("a checkpoint")
    for path in [var, *var.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with structlog.testing.capture_logs() as logs:
        build(settings).close()
    assert [(e["event"], e["count"]) for e in logs if "count" in e] == [("file modes tightened", 4)]
    assert not_private(var) == {}
    assert sorted(modes(var)) == [".", "checkpoints", "checkpoints/checkpoint-1.txt",
                                  "pseudonym.key"]  # no SQLite file on PostgreSQL
