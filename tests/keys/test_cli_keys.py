"""``outcomes keys generate|status|rotate`` and ``outcomes patients erase`` as a user runs them
(README "Encryption at rest and keys", "Erasure"), on SQLite files in the test's folder and on a
PostgreSQL ledger of its own. Refusals are one line on stderr, exit status 1."""

from __future__ import annotations

import getpass
import json
from base64 import b64decode
from pathlib import Path

import pytest
from keys_helpers import TRIAL, new_key
from typer.testing import CliRunner, Result

from application.outcomes import OutcomesApplication
from bootstrap import Settings
from cli import app
from domain.episode import Episode
from trust.cipher import ErasedEvent
from trust.keys import check_id

runner = CliRunner()
IMPORT = ["import", "csv", str(TRIAL), "--clinic", "trial", "--criteria", "frank1991",
          "--patient", "PATIENT", "--day", "RELDAYS", "--anchor", "2004-01-05",
          "--instrument", "HAM-D17", "--total", "HAMDTL17", "--baseline", "BASVAL"]


@pytest.fixture(autouse=True)
def cli_store(store: str, request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """OUTCOMES_* for the commands: files in ``tmp_path``, or the test's PostgreSQL ledger."""
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(tmp_path / "var" / "outcomes.sqlite"))
    if store == "postgres":
        for name, value in request.getfixturevalue("postgres_ledger").environ().items():
            monkeypatch.setenv(name, value)
    return store


pytestmark = pytest.mark.file_store


def run(*args: str, **env: str) -> Result:
    return runner.invoke(app, list(args), env=env or None)


def one_line_error(result: Result, starts: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {starts}"), result.stderr


def first_opened(key: str) -> object:
    """The first episode's Opened event, read through the store's own mapper."""
    settings = Settings(cipher_key=key)
    store = OutcomesApplication(settings.eventsourcing_env())
    try:
        opened = store.recorder.select_notifications(start=1, limit=1,
                                                     topics=[Episode.Opened.TOPIC])[0]
        return store.mapper.to_domain_event(opened)
    finally:
        store.close()


def first_patient(key: str) -> str:
    event = first_opened(key)
    assert isinstance(event, Episode.Opened)
    return event.patient_ref


def test_keys_generate_prints_a_new_master_key(cli_store: str) -> None:
    first, second = run("keys", "generate"), run("keys", "generate")
    assert first.exit_code == 0 and second.exit_code == 0
    assert len(b64decode(first.stdout.strip(), validate=True)) == 32
    assert first.stdout != second.stdout


def test_import_erase_status_rotate_as_a_user_runs_them(cli_store: str, tmp_path: Path) -> None:
    key = new_key()
    if cli_store == "postgres":
        initialised = run("db", "init", OUTCOMES_CIPHER_KEY=key)
        assert initialised.exit_code == 0, initialised.output
    imported = run(*IMPORT, "--json", OUTCOMES_CIPHER_KEY=key)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["episodes_opened"] == 172

    status = run("keys", "status", OUTCOMES_CIPHER_KEY=key)
    assert status.exit_code == 0, status.output
    check = check_id(b64decode(key))
    assert status.stdout.splitlines()[0] == (
        f"outcomes: 172 patient key(s), 0 erased; master key check id {check}")
    assert key not in status.stdout

    patient = first_patient(key)
    erased = run("patients", "erase", patient, "--reason", "GDPR Art. 17 request",
                 OUTCOMES_CIPHER_KEY=key)
    assert erased.exit_code == 0, erased.output
    assert erased.stdout.startswith("erased: 1 episode(s), 1 key(s) destroyed; "
                                    "ErasureCompleted at position ")
    again = run("patients", "erase", patient, "--reason", "again", OUTCOMES_CIPHER_KEY=key)
    assert again.exit_code == 0
    assert again.stdout.strip() == "already erased: nothing left to erase for this patient_ref"
    one_line_error(run("patients", "erase", "pt-nobody", "--reason", "x",
                       OUTCOMES_CIPHER_KEY=key), "no episode of this patient_ref")
    log = (tmp_path / "var" / "erasures.jsonl").read_text().splitlines()
    assert len(log) == 1
    entry = json.loads(log[0])
    assert entry["erased_by"] == f"cli:{getpass.getuser()}"
    assert entry["reason"] == "GDPR Art. 17 request" and patient not in log[0]
    assert run("keys", "status", OUTCOMES_CIPHER_KEY=key).stdout.splitlines()[0].startswith(
        "outcomes: 172 patient key(s), 1 erased;")

    new = new_key()
    rotated = run("keys", "rotate", OUTCOMES_CIPHER_KEY=key, OUTCOMES_NEW_CIPHER_KEY=new)
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.splitlines()[0] == (
        f"outcomes: 173 key(s) re-wrapped; master key check id now {check_id(b64decode(new))}")
    one_line_error(run("keys", "status", OUTCOMES_CIPHER_KEY=key),
                   "OUTCOMES_CIPHER_KEY is not the master key of the outcomes_keys table")
    assert run("keys", "status", OUTCOMES_CIPHER_KEY=new).exit_code == 0
    assert isinstance(first_opened(new), ErasedEvent)  # the erased patient's, with the new key


def test_erase_without_a_master_key_refuses_in_one_line(cli_store: str) -> None:
    one_line_error(run("patients", "erase", "pt-any", "--reason", "x"),
                   "OUTCOMES_CIPHER_KEY is not set: events are not encrypted")
    one_line_error(run("keys", "rotate", OUTCOMES_CIPHER_KEY=new_key()),
                   "OUTCOMES_NEW_CIPHER_KEY is not set")
    one_line_error(run("keys", "status", OUTCOMES_CIPHER_KEY="short"),
                   "OUTCOMES_CIPHER_KEY must be the base64 of 32 random bytes")


def test_postgres_without_db_init_names_the_command(cli_store: str) -> None:
    if cli_store != "postgres":
        pytest.skip("SQLite creates its key table on first use")  # pragma: no cover
    one_line_error(run("patients", "erase", "pt-any", "--reason", "x",
                       OUTCOMES_CIPHER_KEY=new_key()),
                   "the key table outcomes_keys does not exist: run `outcomes db init`")


def test_a_wrong_master_key_is_one_line_for_every_command(cli_store: str) -> None:
    key = new_key()
    if cli_store == "postgres":
        assert run("db", "init", OUTCOMES_CIPHER_KEY=key).exit_code == 0
    assert run(*IMPORT, OUTCOMES_CIPHER_KEY=key).exit_code == 0
    wrong = new_key()
    for command in (IMPORT, ["projections", "status"], ["keys", "status"],
                    ["patients", "erase", "pt-any", "--reason", "x"]):
        one_line_error(run(*command, OUTCOMES_CIPHER_KEY=wrong),
                       "OUTCOMES_CIPHER_KEY is not the master key of the outcomes_keys table")
