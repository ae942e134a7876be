"""``outcomes audit checkpoint``, ``verify`` and ``public-key`` as a user runs them (the
OUTCOMES_* variables of a SQLite folder or a PostgreSQL ledger), and ``db init`` creating the
chain tables."""

from __future__ import annotations

import pytest
from trust_helpers import Ledger, fill
from typer.testing import CliRunner

from cli import app
from trust import checkpoints

pytestmark = pytest.mark.file_store


@pytest.fixture
def run(ledger: Ledger, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    s = ledger.settings
    env = {"OUTCOMES_STORE": s.store, "OUTCOMES_SQLITE_PATH": str(s.sqlite_path),
           "OUTCOMES_LOG_FORMAT": "json"}
    if ledger.postgres:
        env.update({"OUTCOMES_POSTGRES_HOST": s.postgres_host,
                    "OUTCOMES_POSTGRES_PORT": s.postgres_port,
                    "OUTCOMES_POSTGRES_USER": s.postgres_user,
                    "OUTCOMES_POSTGRES_DBNAME": s.postgres_dbname,
                    "OUTCOMES_POSTGRES_SCHEMA": s.postgres_schema})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OUTCOMES_CIPHER_KEY", raising=False)  # verify needs no master key

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, list(args))
    return invoke


def test_checkpoint_verify_and_public_key(ledger: Ledger, run) -> None:  # type: ignore[no-untyped-def]
    fill(ledger.settings, episodes=2)
    made = run("audit", "checkpoint")
    assert made.exit_code == 0, made.output
    path = checkpoints.latest_checkpoint(ledger.settings)
    assert path is not None
    assert made.output == path.read_text() + f"written to {path}\n"
    done = run("audit", "verify", "--deep")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    signed = checkpoints.read_checkpoint(path, checkpoints.signing_key(
        ledger.settings).public_key())
    head = signed.heads["outcomes"]
    assert lines[0] == f"checkpoint: {path}"
    assert lines[1] == f"verified: outcomes size {head.size} root {head.root.hex()}"
    assert lines[2].startswith("verified: rescoring-runs size 0 root e3b0c442")
    assert lines[3].startswith("verified: access-log size 0 root ")
    key = run("audit", "public-key")
    assert key.exit_code == 0 and key.output.startswith("outcome-ledger+")
    again = run("audit", "verify", "--public-key", key.output.strip(), "--checkpoint", str(path))
    assert again.exit_code == 0, again.output


def test_a_fault_exits_1_naming_kind_store_and_position(ledger: Ledger, run) -> None:  # type: ignore[no-untyped-def]
    fill(ledger.settings, episodes=1)
    assert run("audit", "checkpoint").exit_code == 0
    ledger.execute(f"UPDATE {ledger.table('events')} SET topic = topic || 'x' "
                   f"WHERE {ledger.pos} = ?", (2,))
    done = run("audit", "verify")
    assert done.exit_code == 1
    assert done.output.splitlines()[1] == (
        "FAULT edited at outcomes position 2: the stored event differs from the one chained")


def test_a_checkpoint_of_another_key_is_a_bad_signature(ledger: Ledger, run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert run("audit", "checkpoint").exit_code == 0
    other = checkpoints.verifier_key(Ed25519PrivateKey.generate().public_key())
    done = run("audit", "verify", "--public-key", other)
    assert done.exit_code == 1
    assert done.output.splitlines()[1].startswith("FAULT bad-signature at checkpoint: ")


def test_db_init_creates_the_chain_tables(ledger: Ledger, run) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "init").exit_code == 0
    if ledger.postgres:
        rows = ledger.execute("SELECT table_name FROM information_schema.tables WHERE "
                              "table_schema = ? AND table_name LIKE ? ORDER BY 1",
                              (ledger.settings.postgres_schema, "%_chain"))
        assert [r[0] for r in rows] == ["accesslog_events_chain", "outcomes_events_chain",
                                        "rescorings_events_chain"]
    else:
        assert ledger.execute("SELECT count(*) FROM stored_events_chain") == [(0,)]
